//! The options of `#[aggregate(...)]`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{LitInt, LitStr, Path, Token, Type, Visibility};

use crate::ctxt::Ctxt;
use crate::symbol::*;

/// What `#[aggregate(...)]` says; every option is optional.
#[derive(Default)]
pub(crate) struct Args {
    /// The stream category.
    pub(crate) name: Option<LitStr>,
    /// The error type of fallible commands.
    pub(crate) error: Option<Type>,
    /// `Aggregate::SNAPSHOT_EVERY`.
    pub(crate) snapshot_every: Option<u64>,
    /// `Aggregate::SNAPSHOT_KEEP`.
    pub(crate) snapshot_keep: Option<usize>,
    /// `Aggregate::STATE_VERSION`.
    pub(crate) state_version: Option<u32>,
    /// The visibility of the generated enums (default `pub`).
    pub(crate) vis: Option<Visibility>,
    /// Derives added to both generated enums.
    pub(crate) derives: Vec<Path>,
    /// Derives added to the command enum only.
    pub(crate) command_derives: Vec<Path>,
    /// Derives added to the event enum only.
    pub(crate) event_derives: Vec<Path>,
    /// The path of the `es` crate (default `::es`).
    pub(crate) krate: Option<Path>,
    /// What commands consult besides their data: `Aggregate::Services`.
    pub(crate) services: Option<Type>,
}

impl Args {
    /// Reads the options, recording every mistake in `cx`.
    pub(crate) fn parse(cx: &Ctxt, tokens: TokenStream) -> Args {
        let mut args = Args::default();
        // Whole numbers are read as literals here and checked against their type below, once
        // every option is read, so their range errors follow the other mistakes.
        let (mut snapshot_every, mut snapshot_keep, mut state_version) = (None, None, None);
        let mut seen: Vec<String> = Vec::new();
        let parser = syn::meta::parser(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            if !AGGREGATE_OPTIONS.contains(&key.as_str()) {
                // Reported, and skipped so the options after it are still read.
                cx.syn_error(unknown(&meta));
                return skip_value(&meta);
            }
            if seen.contains(&key) {
                // Still consume the value so the rest of the options are read.
                let _ = skip_value(&meta);
                cx.error_spanned_by(
                    &meta.path,
                    format!("duplicate `{key}` option: give each option of `#[aggregate]` once"),
                );
                return Ok(());
            }
            seen.push(key.clone());
            match key.as_str() {
                NAME => args.name = Some(meta.value()?.parse()?),
                ERROR => args.error = Some(meta.value()?.parse()?),
                SNAPSHOT_EVERY => snapshot_every = int(cx, &meta)?,
                SNAPSHOT_KEEP => snapshot_keep = int(cx, &meta)?,
                STATE_VERSION => state_version = int(cx, &meta)?,
                VIS => args.vis = Some(meta.value()?.parse()?),
                CRATE => args.krate = Some(meta.value()?.parse()?),
                SERVICES => args.services = Some(meta.value()?.parse()?),
                DERIVE => args.derives = paths(&meta)?,
                COMMAND_DERIVE => args.command_derives = paths(&meta)?,
                EVENT_DERIVE => args.event_derives = paths(&meta)?,
                _ => unreachable!("every option in AGGREGATE_OPTIONS is matched"),
            }
            Ok(())
        });
        if let Err(e) = parser.parse2(tokens) {
            cx.syn_error(e);
        }
        if let Some(name) = &args.name {
            check_stream_category(cx, name);
        }
        args.snapshot_every = number(cx, snapshot_every, SNAPSHOT_EVERY, "u64");
        args.snapshot_keep = number(cx, snapshot_keep, SNAPSHOT_KEEP, "usize");
        args.state_version = number(cx, state_version, STATE_VERSION, "u32");
        args
    }
}

fn unknown(meta: &ParseNestedMeta<'_>) -> syn::Error {
    let key = meta
        .path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default();
    let close: Vec<String> = AGGREGATE_OPTIONS
        .iter()
        .filter(|o| resembles(&key, o))
        .map(|o| format!("`{o}`"))
        .collect();
    let all = AGGREGATE_OPTIONS
        .iter()
        .map(|o| format!("`{o}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if close.is_empty() {
        meta.error(format!(
            "unknown option of `#[aggregate]`: expected one of {all}"
        ))
    } else {
        meta.error(format!(
            "unknown option of `#[aggregate]`: did you mean {}? (options: {all})",
            close.join(" or ")
        ))
    }
}

/// Whether a mistyped option looks like `option`: a long common prefix, or a typo or two.
pub(crate) fn resembles(typed: &str, option: &str) -> bool {
    let prefix = typed
        .chars()
        .zip(option.chars())
        .take_while(|(a, b)| a == b)
        .count();
    prefix >= 4 || (typed.len() > 2 && edit_distance(typed, option) <= 2)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let value = meta.value()?;
        while !value.is_empty() && !value.peek(Token![,]) {
            value.parse::<proc_macro2::TokenTree>()?;
        }
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    }
    Ok(())
}

/// `(A, b::C)`
fn paths(meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<Path>> {
    let content;
    syn::parenthesized!(content in meta.input);
    let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
    Ok(paths.into_iter().collect())
}

/// A whole number; anything else is reported and skipped.
fn int(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<LitInt>> {
    let value = meta.value()?;
    if value.peek(LitInt) || (value.peek(Token![-]) && value.peek2(LitInt)) {
        return value.parse().map(Some);
    }
    let option = path_str(&meta.path);
    cx.syn_error(value.error(format!(
        "`{option}` takes a whole number, like `{option} = 100`"
    )));
    while !value.is_empty() && !value.peek(Token![,]) {
        value.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(None)
}

fn path_str(path: &Path) -> String {
    path.get_ident()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// A stream category is non-empty ASCII letters, digits and `_` (see `Aggregate::NAME`).
fn check_stream_category(cx: &Ctxt, name: &LitStr) {
    let value = name.value();
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        cx.error_spanned_by(
            name,
            "the aggregate `name` is its stream category: non-empty, made of ASCII letters, \
             digits and `_` (no `-`)",
        );
    }
}

/// The value of a whole-number option, if it fits `N` (named `ty` in the error).
fn number<N>(cx: &Ctxt, lit: Option<LitInt>, option: &str, ty: &str) -> Option<N>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    let lit = lit?;
    let value = lit.base10_parse::<N>().ok();
    if value.is_none() {
        cx.error_spanned_by(
            &lit,
            format!("`{option}` takes a whole number that fits a `{ty}`"),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::{Args, resembles};
    use crate::ctxt::Ctxt;

    #[test]
    fn whole_numbers_are_read_into_their_types() {
        let cx = Ctxt::new();
        let args = Args::parse(
            &cx,
            quote!(snapshot_every = 10, snapshot_keep = 2, state_version = 3),
        );
        assert!(cx.check().is_ok());
        assert_eq!(args.snapshot_every, Some(10));
        assert_eq!(args.snapshot_keep, Some(2));
        assert_eq!(args.state_version, Some(3));

        let cx = Ctxt::new();
        let args = Args::parse(&cx, quote!(state_version = 4294967296, snapshot_every = -1));
        let errors = cx.check().expect_err("out of range");
        assert_eq!(errors.into_iter().count(), 2);
        assert_eq!(args.state_version, None);
        assert_eq!(args.snapshot_every, None);
    }

    #[test]
    fn suggestions() {
        assert!(resembles("snapshots", "snapshot_every"));
        assert!(resembles("snapshots", "snapshot_keep"));
        assert!(resembles("nmae", "name"));
        assert!(resembles("eror", "error"));
        assert!(!resembles("visibility", "name"));
        assert!(!resembles("x", "vis"));
    }
}
