//! The assertions on the types the user chose (the error type, the field types), reported
//! in the macro's terms before rustc's errors in the generated code.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::visit_mut::VisitMut;

use crate::model::{Aggregate, FieldType, Param, ReplaceSelf};
use crate::spans;
use crate::tokens;

/// Assertions on the types the user chose, each reported on the type with a message in the
/// terms of the macro, before rustc's errors in the generated code (the serde derives, the
/// `Aggregate` impl), which name traits and bounds the user never wrote.
///
/// They are bounds of a struct's `where` clause, which rustc checks before any function body
/// (where the derives' errors are), each on a helper trait whose `on_unimplemented` message
/// it reports; `do_not_recommend` keeps it from reporting the std or serde bound behind the
/// helper's impl instead. Fields are asserted `Deserialize<'static>`, the least the derive
/// may need.
pub(crate) fn expand(agg: &Aggregate<'_>) -> TokenStream {
    let private = agg.private();
    let mut bounds = Vec::new();
    if let Some(error) = agg.error_type() {
        let mut error = error.clone();
        ReplaceSelf(&agg.original.self_ty).visit_type_mut(&mut error);
        // `Self::Assoc` means nothing outside the impl; leave such a type to rustc.
        if !mentions_self(error.to_token_stream()) {
            bounds.push(bound(&error, quote!(__AggregateError)));
        }
    }
    if let Some(services) = &agg.args.services
        && !mentions_self(services.to_token_stream())
    {
        bounds.push(bound(services, quote!(__Services)));
    }
    // Event fields first: a type in both is asserted once, as an event field.
    let event_leaves = leaves_of(agg.events.iter().flat_map(|e| &e.params));
    let command_leaves = leaves_of(agg.commands.iter().flat_map(|c| &c.params));
    let mut seen = Vec::new();
    let tagged = event_leaves
        .into_iter()
        .map(|ty| (ty, quote!(__EventField)))
        .chain(
            command_leaves
                .into_iter()
                .map(|ty| (ty, quote!(__CommandField))),
        );
    for (ty, check) in tagged {
        let key = tokens::type_string(ty);
        if seen.contains(&key) || mentions_self(ty.to_token_stream()) {
            continue;
        }
        seen.push(key);
        bounds.push(bound(ty, check));
    }
    if bounds.is_empty() {
        return TokenStream::new();
    }
    quote! {
        const _: () = {
            #[diagnostic::on_unimplemented(
                message = "`{Self}` must implement `std::error::Error` to be an aggregate's error type",
                label = "not a `std::error::Error`",
                note = "an error type implements `std::fmt::Debug`, `std::fmt::Display` and `std::error::Error`"
            )]
            trait __AggregateError {}
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized + #private::std::error::Error> __AggregateError for T {}

            #[diagnostic::on_unimplemented(
                message = "event and command field types must implement `serde::Serialize` and `serde::Deserialize`",
                label = "a field of a generated enum, which derives `Serialize` and `Deserialize`",
                note = "derive them with `#[derive(Serialize, Deserialize)]`, from `es::prelude` or `serde`"
            )]
            trait __EventField {}
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized + #private::serde::Serialize + #private::serde::Deserialize<'static>>
                __EventField for T {}

            #[diagnostic::on_unimplemented(
                message = "command field types must implement `serde::Serialize` and `serde::Deserialize`",
                label = "a field of the generated command enum, which derives `Serialize` and `Deserialize`",
                note = "derive them with `#[derive(Serialize, Deserialize)]`, from `es::prelude` or `serde`",
                note = "a command that consults a service (a clock, a lookup) does not take it as a field: declare `#[aggregate(services = YourServices)]` and take `services: &YourServices`"
            )]
            trait __CommandField {}
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized + #private::serde::Serialize + #private::serde::Deserialize<'static>>
                __CommandField for T {}

            #[diagnostic::on_unimplemented(
                message = "`{Self}` is the aggregate's services, which the host shares between its threads: it must be `Send + Sync + 'static`",
                label = "the type of `#[aggregate(services = ...)]`",
                note = "hold a service that is not `Sync` behind a `Mutex`"
            )]
            trait __Services {}
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized + #private::std::marker::Send + #private::std::marker::Sync + 'static>
                __Services for T {}

            #[allow(dead_code)]
            struct __Checks where #(#bounds,)*;
        };
    }
}

/// The types asserted for these fields (see [`serde_leaves`]).
fn leaves_of<'p>(params: impl Iterator<Item = &'p Param<'p>>) -> Vec<&'p syn::Type> {
    let mut leaves = Vec::new();
    for param in params.filter(|p| plain_serde(p)) {
        match &param.ty {
            FieldType::Plain(ty) | FieldType::VecOf(ty) => serde_leaves(ty, &mut leaves),
            FieldType::String => {}
        }
    }
    leaves
}

/// `ty: Trait`, reported on the whole of `ty`: the added tokens take the span of its last
/// token, so the predicate spans from its first to its last.
fn bound(ty: &syn::Type, trait_: TokenStream) -> TokenStream {
    let tokens = ty.to_token_stream();
    let rest = spans::respanned(quote!(: #trait_), spans::last(&tokens));
    quote!(#tokens #rest)
}

/// The types whose serde impls `ty`'s depend on, where that is known: the elements of
/// tuples, arrays and std collections, so that a missing impl is reported on the element
/// itself (rustc words it in the macro's terms only for the type that was asserted).
fn serde_leaves<'t>(ty: &'t syn::Type, out: &mut Vec<&'t syn::Type>) {
    const COLLECTIONS: &[(&str, usize)] = &[
        ("Vec", 1),
        ("VecDeque", 1),
        ("LinkedList", 1),
        ("BinaryHeap", 1),
        ("Option", 1),
        ("HashSet", 1),
        ("BTreeSet", 1),
        ("HashMap", 2),
        ("BTreeMap", 2),
    ];
    match ty {
        syn::Type::Paren(p) => serde_leaves(&p.elem, out),
        syn::Type::Group(g) => serde_leaves(&g.elem, out),
        syn::Type::Tuple(t) => t.elems.iter().for_each(|e| serde_leaves(e, out)),
        syn::Type::Array(a) => serde_leaves(&a.elem, out),
        syn::Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last().expect("a path has a segment");
            let elements = COLLECTIONS
                .iter()
                .find(|(name, _)| last.ident == name)
                .map(|(_, n)| *n);
            match (&last.arguments, elements) {
                (syn::PathArguments::AngleBracketed(args), Some(n)) => args
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        syn::GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .take(n)
                    .for_each(|t| serde_leaves(t, out)),
                _ => out.push(ty),
            }
        }
        _ => out.push(ty),
    }
}

/// Whether `tokens` mention `Self`.
fn mentions_self(tokens: TokenStream) -> bool {
    let mut found = Vec::new();
    tokens::idents(tokens, &mut found);
    found.iter().any(|i| i == "Self")
}

/// Whether a field is serialized as its type says: no `#[serde(with = ...)]`, `skip` or other
/// attribute that lets a type without the serde traits be a field.
fn plain_serde(param: &Param<'_>) -> bool {
    const PLAIN: &[&str] = &[
        "default",
        "rename",
        "alias",
        "skip_serializing_if",
        "flatten",
    ];
    param.serde.iter().all(|attr| {
        attr.parse_nested_meta(|meta| {
            if PLAIN.iter().any(|p| meta.path.is_ident(p)) {
                if meta.input.peek(syn::Token![=]) {
                    let _: syn::Expr = meta.value()?.parse()?;
                }
                Ok(())
            } else {
                Err(meta.error("not plain"))
            }
        })
        .is_ok()
    })
}
