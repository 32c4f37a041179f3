//! The rules of event versions and upcasts: every stored (type name, version) reads as
//! current events in exactly one way.
//!
//! An event at version N is stored at N from now on; versions 1 to N-1 were stored before
//! and each needs an `#[upcast]` that reads it as current events. A type name no current
//! event has (`retired`) needs an upcast for each version from 1 to its last.

use syn::FnArg;

use crate::args::resembles;
use crate::ctxt::Ctxt;
use crate::model::{Aggregate, Upcast};
use crate::symbol::RETIRED;

pub(crate) fn check(cx: &Ctxt, agg: &Aggregate<'_>) {
    for event in &agg.events {
        if let Some(v) = &event.version
            && v.value == Some(0)
        {
            cx.error_spanned_by(&v.lit, "event versions start at 1");
        }
    }
    let mut seen: Vec<(String, u32)> = Vec::new();
    for upcast in &agg.upcasts {
        check_signature(cx, upcast);
        let (Some(from), Some(version)) = (&upcast.from, &upcast.version) else {
            continue;
        };
        let name = from.value();
        let Some(value) = version.value else { continue };
        if value == 0 {
            cx.error_spanned_by(&version.lit, "event versions start at 1");
            continue;
        }
        if seen.contains(&(name.clone(), value)) {
            cx.error_spanned_by(
                &version.lit,
                format!(
                    "duplicate upcast of `{name}` version {value}: each stored version reads \
                     one way"
                ),
            );
            continue;
        }
        seen.push((name.clone(), value));
        if let Some(owner) = agg
            .events
            .iter()
            .find(|e| e.aliases.iter().any(|a| a.value() == name))
        {
            cx.error_spanned_by(
                from,
                format!(
                    "`{name}` is an alias of `{}`, which decodes it at the current version; \
                     upcast from the event's stored name `{}` or drop the alias",
                    owner.original.sig.ident,
                    owner.stored_name()
                ),
            );
            continue;
        }
        match agg.events.iter().find(|e| e.stored_name() == name) {
            Some(event) => {
                if let Some(retired) = &upcast.retired {
                    cx.error_spanned_by(
                        retired,
                        format!(
                            "`{name}` is the stored name of `{}`, a current event: it is not \
                             retired",
                            event.original.sig.ident
                        ),
                    );
                } else if value >= event.version() {
                    cx.error_spanned_by(
                        &version.lit,
                        format!(
                            "an upcast reads a past version: `{name}` is at version {} now, so \
                             this one must be below {}{}",
                            event.version(),
                            event.version(),
                            if event.version() == 1 {
                                " (give the event `#[event(version = 2)]`)"
                            } else {
                                ""
                            }
                        ),
                    );
                }
            }
            None if upcast.retired.is_none() => {
                let close: Vec<String> = agg
                    .events
                    .iter()
                    .map(|e| e.stored_name())
                    .filter(|n| resembles(&name, n) || n.eq_ignore_ascii_case(&name))
                    .map(|n| format!("`{n}`"))
                    .collect();
                let hint = if close.is_empty() {
                    String::new()
                } else {
                    format!("did you mean {}? ", close.join(" or "))
                };
                cx.error_spanned_by(
                    from,
                    format!(
                        "no event is stored as `{name}`: {hint}for an event that no longer \
                         exists, add `{RETIRED}`"
                    ),
                );
            }
            None => {}
        }
    }
    check_every_version_reads(cx, agg);
}

/// An upcast is a plain function of the old fields, returning events.
fn check_signature(cx: &Ctxt, upcast: &Upcast<'_>) {
    let sig = &upcast.original.sig;
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        cx.error_spanned_by(
            receiver,
            "`#[upcast]` functions take no `self`: their parameters are the fields of the \
             past event, and they return the current events",
        );
    }
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(asyncness, "`#[upcast]` functions cannot be `async`");
    }
    for param in &sig.generics.params {
        cx.error_spanned_by(
            param,
            "`#[upcast]` functions cannot have generic or lifetime parameters: their \
             parameters are the fields of a stored event",
        );
    }
}

/// Every past version of every type name has its upcast.
fn check_every_version_reads(cx: &Ctxt, agg: &Aggregate<'_>) {
    let has = |name: &str, v: u32| {
        agg.upcasts
            .iter()
            .any(|u| u.source_name() == name && u.version() == v)
    };
    for event in &agg.events {
        let name = event.stored_name();
        let missing: Vec<String> = (1..event.version())
            .filter(|v| !has(&name, *v))
            .map(|v| v.to_string())
            .collect();
        if let (Some(version), false) = (&event.version, missing.is_empty()) {
            cx.error_spanned_by(
                &version.lit,
                format!(
                    "`{name}` is at version {}, so its versions before were stored too: \
                     version {} has no `#[upcast(from = \"{name}\", version = ...)]` to read it",
                    event.version(),
                    missing.join(", ")
                ),
            );
        }
    }
    for upcast in agg.upcasts.iter().filter(|u| u.retired.is_some()) {
        let name = upcast.source_name();
        let last = agg
            .upcasts
            .iter()
            .filter(|u| u.source_name() == name)
            .map(Upcast::version)
            .max()
            .unwrap_or(0);
        if upcast.version() != last {
            continue;
        }
        let missing: Vec<String> = (1..last)
            .filter(|v| !has(&name, *v))
            .map(|v| v.to_string())
            .collect();
        if let (Some(version), false) = (&upcast.version, missing.is_empty()) {
            cx.error_spanned_by(
                &version.lit,
                format!(
                    "the retired `{name}` was stored up to version {last}: version {} has no \
                     `#[upcast]` to read it",
                    missing.join(", ")
                ),
            );
        }
    }
}
