//! The options of `#[command(...)]` and `#[event(...)]`, and which of the two an attribute is.

use proc_macro2::Ident;
use syn::punctuated::Punctuated;
use syn::{Attribute, LitStr, Meta, Token};

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
                    } else {
                        Err(meta.error(
                            "unknown option of `#[event]`: expected `name = \"...\"` or \
                             `alias = \"...\"`",
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
        EventArgs { name, aliases }
    }
}
