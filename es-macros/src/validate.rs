//! Checks the rules of the DSL on the model, recording every violation.

use quote::ToTokens;
use syn::{FnArg, GenericParam, ImplItemFn, ReceiverKind, ReturnType, Safety, Type};

use crate::ctxt::Ctxt;
use crate::model::{Aggregate, Command, Event};
use crate::symbol::{COMMAND, EVENT};

pub(crate) fn check(cx: &Ctxt, agg: &Aggregate<'_>) {
    check_impl(cx, agg);
    for command in &agg.commands {
        check_method(cx, command.original, COMMAND);
    }
    for event in &agg.events {
        check_method(cx, event.original, EVENT);
        if let ReturnType::Type(_, ty) = &event.original.sig.output
            && !is_unit(ty)
        {
            cx.error_spanned_by(
                ty,
                "`#[event]` methods return nothing: applying an event cannot fail or \
                     produce a value (validation belongs in commands)",
            );
        }
    }
    check_duplicate_variants(cx, agg);
    check_event_type_names(cx, &agg.events);
    check_error_types(cx, agg);
    check_emits(cx, agg);
    check_services(cx, agg);
    crate::versions::check(cx, agg);
}

fn check_services(cx: &Ctxt, agg: &Aggregate<'_>) {
    if let Some(ty) = &agg.args.services
        && !matches!(ty, Type::Path(p) if p.qself.is_none())
    {
        cx.error_spanned_by(
            ty,
            "`services` names the type of what commands consult, like \
             `services = BankServices`: a struct holding the clock, the lookups, ...",
        );
    }
}

fn check_impl(cx: &Ctxt, agg: &Aggregate<'_>) {
    let item = agg.original;
    if let Some((path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "`#[aggregate]` goes on an inherent impl, like `impl BankAccount { ... }`; this is \
             an impl of a trait",
        );
    }
    if let Some(unsafety) = &item.unsafety {
        cx.error_spanned_by(unsafety, "`#[aggregate]` goes on a safe impl block");
    }
    for param in &item.generics.params {
        match param {
            GenericParam::Lifetime(_) => cx.error_spanned_by(
                param,
                "`#[aggregate]` does not support lifetime parameters: an aggregate owns its \
                 state, which is stored and reloaded",
            ),
            _ => cx.error_spanned_by(
                param,
                "`#[aggregate]` does not support generic parameters: the aggregate must be a \
                 concrete type, like `impl BankAccount`",
            ),
        }
    }
    if let Some(where_clause) = &item.generics.where_clause
        && item.generics.params.is_empty()
    {
        cx.error_spanned_by(
            where_clause,
            "`#[aggregate]` does not support `where` clauses on the impl block",
        );
    }
    // A trait impl is the mistake; that it has no command follows from it.
    if agg.commands.is_empty() && agg.ident.is_some() && item.trait_.is_none() {
        cx.error_spanned_by(
            &item.self_ty,
            "an aggregate needs at least one `#[command]` method (`&self` + parameters, \
             returning its events)",
        );
    }
}

fn check_method(cx: &Ctxt, method: &ImplItemFn, kind: &str) {
    let sig = &method.sig;
    let (wanted, mutable) = if kind == COMMAND {
        ("&self", false)
    } else {
        ("&mut self", true)
    };
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            let found = match &receiver.kind {
                ReceiverKind::Reference(_, None, m) if m.is_some() == mutable => None,
                ReceiverKind::Reference(_, _, Some(_)) => Some("`&mut self`".to_owned()),
                ReceiverKind::Reference(..) => Some("`&self`".to_owned()),
                ReceiverKind::Value => Some("`self` by value".to_owned()),
                ReceiverKind::Typed(_, ty) => {
                    Some(format!("`self: {}`", crate::tokens::type_string(ty)))
                }
                _ => Some("another kind of `self`".to_owned()),
            };
            if let Some(found) = found {
                cx.error_spanned_by(
                    receiver,
                    format!("`#[{kind}]` methods take `{wanted}`; this one takes {found}"),
                );
            }
        }
        _ => cx.error_spanned_by(
            &sig.ident,
            format!("`#[{kind}]` methods take `{wanted}` first; this one has no `self`"),
        ),
    }
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            format!(
                "`#[{kind}]` methods cannot be `async`: {}",
                if kind == COMMAND {
                    "a command decides from the state alone; do I/O before sending it"
                } else {
                    "applying an event only changes the state"
                }
            ),
        );
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        cx.error_spanned_by(unsafety, format!("`#[{kind}]` methods cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            format!("`#[{kind}]` methods cannot have an `extern` ABI"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format!("`#[{kind}]` methods cannot be variadic"));
    }
    for param in &sig.generics.params {
        let what = match param {
            GenericParam::Lifetime(_) => {
                "lifetime parameters: parameters become fields of a generated enum, which owns \
                 its data"
            }
            _ => {
                "generic parameters: parameters become fields of a generated enum, which needs concrete types"
            }
        };
        cx.error_spanned_by(param, format!("`#[{kind}]` methods cannot have {what}"));
    }
}

fn check_duplicate_variants(cx: &Ctxt, agg: &Aggregate<'_>) {
    let commands = agg
        .commands
        .iter()
        .map(|c: &Command<'_>| (&c.variant, c.original));
    duplicates(cx, commands, &agg.command_enum().to_string());
    let events = agg
        .events
        .iter()
        .map(|e: &Event<'_>| (&e.variant, e.original));
    duplicates(cx, events, &agg.event_enum().to_string());
}

fn duplicates<'a>(
    cx: &Ctxt,
    handlers: impl Iterator<Item = (&'a proc_macro2::Ident, &'a ImplItemFn)>,
    enum_name: &str,
) {
    let mut seen: Vec<(&proc_macro2::Ident, &ImplItemFn)> = Vec::new();
    for (variant, method) in handlers {
        if let Some((_, first)) = seen.iter().find(|(v, _)| *v == variant) {
            cx.error_spanned_by(
                &method.sig.ident,
                format!(
                    "duplicate variant `{enum_name}::{variant}`: methods `{}` and `{}` both \
                     become it; rename one",
                    first.sig.ident, method.sig.ident
                ),
            );
        } else {
            seen.push((variant, method));
        }
    }
}

fn check_event_type_names(cx: &Ctxt, events: &[Event<'_>]) {
    // Each stored name and alias seen so far: the name, its event's method, and which it is.
    let mut seen: Vec<(String, String, &str)> = Vec::new();
    for event in events {
        let mut names: Vec<(String, Box<dyn ToTokens>, &str)> = Vec::new();
        match &event.name {
            Some(lit) => names.push((lit.value(), Box::new(lit.clone()), "the stored name")),
            None => names.push((
                event.variant.to_string(),
                Box::new(event.original.sig.ident.clone()),
                "the stored name",
            )),
        }
        for alias in &event.aliases {
            names.push((alias.value(), Box::new(alias.clone()), "an alias"));
        }
        let method = event.original.sig.ident.to_string();
        let mut own: Vec<(String, &str)> = Vec::new();
        for (name, at, role) in names {
            if let Some((_, other, other_role)) = seen.iter().find(|(n, ..)| *n == name) {
                cx.error_spanned_by(
                    at,
                    format!(
                        "duplicate event type name `{name}`: it is already {other_role} of \
                         `{other}`; each stored name and alias must belong to one event"
                    ),
                );
            } else if own.iter().any(|(n, _)| *n == name) {
                cx.error_spanned_by(
                    at,
                    format!("event type name `{name}` is given twice for `{method}`"),
                );
            } else {
                own.push((name, role));
            }
        }
        seen.extend(
            own.into_iter()
                .map(|(name, role)| (name, method.clone(), role)),
        );
    }
}

fn check_error_types(cx: &Ctxt, agg: &Aggregate<'_>) {
    // The reference every fallible command is compared with: the option, or the first one.
    let mut reference: Option<(String, String)> = agg
        .args
        .error
        .as_ref()
        .map(|e| (key(e), "`#[aggregate(error = ...)]`".to_owned()));
    for command in &agg.commands {
        let Some(output) = &command.output else {
            continue;
        };
        if !output.fallible {
            continue;
        }
        let Some(error) = output.error else {
            if agg.args.error.is_none() {
                cx.error_spanned_by(
                    output.ty,
                    "cannot tell the error type from a `Result` alias: write `Result<_, E>` or \
                     give it with `#[aggregate(error = E)]`",
                );
            }
            continue;
        };
        match &reference {
            None => {
                reference = Some((key(error), format!("`{}`", command.original.sig.ident)));
            }
            Some((expected, from)) if *expected != key(error) => cx.error_spanned_by(
                error,
                format!(
                    "all fallible commands share one error type: expected `{}` (as in {from}), \
                     found `{}`",
                    expected,
                    key(error)
                ),
            ),
            Some(_) => {}
        }
    }
}

fn key(ty: &Type) -> String {
    crate::tokens::type_string(ty)
}

fn check_emits(cx: &Ctxt, agg: &Aggregate<'_>) {
    for command in &agg.commands {
        for variant in command.emits.iter().flatten() {
            if !agg.events.iter().any(|e| e.variant == *variant) {
                cx.error_spanned_by(
                    variant,
                    format!(
                        "`emits` lists variants of `{}`; there is no `{variant}` (events: {})",
                        agg.event_enum(),
                        agg.events
                            .iter()
                            .map(|e| format!("`{}`", e.variant))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}
