//! The options of `#[command(...)]` and `#[event(...)]`, and which of the two an attribute is.

use proc_macro2::Ident;
use syn::punctuated::Punctuated;
use syn::{Attribute, LitInt, LitStr, Meta, Token};

use crate::ctxt::Ctxt;
use crate::symbol::*;

/// What `#[command(...)]` says.
pub(crate) struct CommandArgs {
    /// The events it may emit, when given with `emits(...)`.
    pub(crate) emits: Option<Vec<Ident>>,
}

/// What `#[event(...)]` says.
pub(crate) struct EventArgs {
    /// The stored type name, when pinned with `name = "..."`.
    pub(crate) name: Option<LitStr>,
    /// Other stored names this event decodes from, each given with `alias = "..."`.
    pub(crate) aliases: Vec<LitStr>,
    /// The version of its shape, when given with `version = N`.
    pub(crate) version: Option<Version>,
}

/// A version number as written, and its value (`None` when it does not fit a `u32`).
pub(crate) struct Version {
    pub(crate) lit: LitInt,
    pub(crate) value: Option<u32>,
}

impl Version {
    fn parse(cx: &Ctxt, meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Version> {
        let lit: LitInt = meta.value()?.parse()?;
        let value = lit.base10_parse::<u32>().ok();
        if value.is_none() {
            cx.error_spanned_by(&lit, "`version` takes a whole number that fits a `u32`");
        }
        Ok(Version { lit, value })
    }
}

/// What `#[upcast(...)]` says.
pub(crate) struct UpcastArgs {
    /// The stored type name of the past shape.
    pub(crate) from: Option<LitStr>,
    /// The version of the past shape.
    pub(crate) version: Option<Version>,
    /// `retired`: the type name belongs to no current event.
    pub(crate) retired: Option<Ident>,
}

impl UpcastArgs {
    /// Reads `from = "..."`, `version = K` and `retired`, recording every mistake in `cx`.
    pub(crate) fn parse(cx: &Ctxt, attr: &Attribute) -> Self {
        let mut args = UpcastArgs {
            from: None,
            version: None,
            retired: None,
        };
        let expected = "`#[upcast]` takes `from = \"EventName\", version = N`, and `retired` \
                        for an event that no longer exists";
        match &attr.meta {
            Meta::List(_) => {
                let result = attr.parse_nested_meta(|meta| {
                    let duplicate =
                        |what: &str| meta.error(format!("duplicate `{what}` option: give it once"));
                    if meta.path.is_ident(FROM) {
                        if args.from.is_some() {
                            return Err(duplicate(FROM));
                        }
                        args.from = Some(meta.value()?.parse()?);
                    } else if meta.path.is_ident(VERSION) {
                        if args.version.is_some() {
                            return Err(duplicate(VERSION));
                        }
                        args.version = Some(Version::parse(cx, &meta)?);
                    } else if meta.path.is_ident(RETIRED) {
                        args.retired = meta.path.get_ident().cloned();
                    } else {
                        return Err(
                            meta.error(format!("unknown option of `#[upcast]`: {expected}"))
                        );
                    }
                    Ok(())
                });
                if let Err(e) = result {
                    cx.syn_error(e);
                }
                if args.from.is_none() || args.version.is_none() {
                    cx.error_spanned_by(attr, format!("missing options: {expected}"));
                }
            }
            _ => cx.error_spanned_by(attr, expected),
        }
        args
    }
}

/// Whether `attr` is `#[upcast]`.
pub(crate) fn is_upcast(attr: &Attribute) -> bool {
    attr.path().is_ident(UPCAST)
}

/// `#[command]` or `#[event]`, if `attr` is one of them.
pub(crate) fn handler_kind(attr: &Attribute) -> Option<&'static str> {
    let path = attr.path();
    if path.is_ident(COMMAND) {
        Some(COMMAND)
    } else if path.is_ident(EVENT) {
        Some(EVENT)
    } else {
        None
    }
}

impl CommandArgs {
    /// Reads `emits(A, B)`, recording every mistake in `cx`.
    pub(crate) fn parse(cx: &Ctxt, attr: &Attribute) -> Self {
        let mut emits = None;
        match &attr.meta {
            Meta::Path(_) => {}
            Meta::List(_) => {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident(EMITS) {
                        if emits.is_some() {
                            return Err(meta.error("duplicate `emits` option: give it once"));
                        }
                        let content;
                        syn::parenthesized!(content in meta.input);
                        let list = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                        emits = Some(list.into_iter().collect());
                        Ok(())
                    } else {
                        Err(meta.error(
                            "unknown option of `#[command]`: expected `emits(EventVariant, ...)`",
                        ))
                    }
                });
                if let Err(e) = result {
                    cx.syn_error(e);
                }
            }
            Meta::NameValue(nv) => cx.error_spanned_by(
                nv.eq_token,
                "`#[command]` takes no value; write `#[command]` or `#[command(emits(...))]`",
            ),
        }
        CommandArgs { emits }
    }
}

impl EventArgs {
    /// Reads `name = "..."` and `alias = "..."`, recording every mistake in `cx`.
    pub(crate) fn parse(cx: &Ctxt, attr: &Attribute) -> Self {
        let mut name: Option<LitStr> = None;
        let mut aliases = Vec::new();
        let mut version = None;
        match &attr.meta {
            Meta::Path(_) => {}
            Meta::List(_) => {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident(NAME) {
                        let lit: LitStr = meta.value()?.parse()?;
                        if name.is_some() {
                            cx.error_spanned_by(
                                &meta.path,
                                "duplicate `name` option: an event has one stored type name; \
                                 list older names with `alias = \"...\"`",
                            );
                        } else {
                            name = Some(lit);
                        }
                        Ok(())
                    } else if meta.path.is_ident(ALIAS) {
                        aliases.push(meta.value()?.parse::<LitStr>()?);
                        Ok(())
                    } else if meta.path.is_ident(VERSION) {
                        if version.is_some() {
                            return Err(meta.error("duplicate `version` option: give it once"));
                        }
                        version = Some(Version::parse(cx, &meta)?);
                        Ok(())
                    } else {
                        Err(meta.error(
                            "unknown option of `#[event]`: expected `name = \"...\"`, \
                             `alias = \"...\"` or `version = N`",
                        ))
                    }
                });
                if let Err(e) = result {
                    cx.syn_error(e);
                }
            }
            Meta::NameValue(nv) => cx.error_spanned_by(
                nv.eq_token,
                "`#[event]` takes options in parentheses: `#[event(name = \"...\")]`",
            ),
        }
        for lit in name.iter().chain(&aliases) {
            if lit.value().trim().is_empty() {
                cx.error_spanned_by(lit, "an event type name must not be empty");
            }
        }
        EventArgs {
            name,
            aliases,
            version,
        }
    }
}
