//! The two handler enums, `<Type>Command` and `<Type>Event`: one generator, told by a
//! [`HandlerEnum`] what differs between them (name, docs, derives, and the stored names of
//! events), and by a [`Mode`] what the enums are for.

use proc_macro2::{Ident, TokenStream};
use quote::{ToTokens, quote};
use syn::{ImplItemFn, Path};

use crate::docs;
use crate::model::{Aggregate, FieldType, Param};
use crate::symbol::DOC;
use crate::tokens;

/// What the enums are generated for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A valid aggregate: the enums derive the runtime's traits and name their stored events.
    Full,
    /// Beside the errors of an invalid one: bare enums for the user's code to name, with the
    /// impl's generic parameters, so that the compiler reports the real mistakes only.
    Placeholder,
}

/// What differs between the command enum and the event enum.
struct HandlerEnum<'m> {
    name: Ident,
    /// The enum's own docs, line by line.
    doc: Vec<String>,
    /// Derives of this enum alone (`command_derive`, `event_derive`).
    derives: &'m [Path],
    variants: Vec<Variant<'m>>,
}

/// A variant: one handler method.
struct Variant<'m> {
    original: &'m ImplItemFn,
    ident: &'m Ident,
    params: &'m [Param<'m>],
    /// The lines appended to the method's docs.
    notes: Vec<String>,
    /// The options of its `#[serde(...)]` in a full enum: an event's stored names.
    serde: Vec<TokenStream>,
}

/// The command enum, then the event enum.
pub(crate) fn expand(agg: &Aggregate<'_>, mode: Mode) -> TokenStream {
    let commands = handler_enum(agg, mode, &commands(agg));
    let events = handler_enum(agg, mode, &events(agg));
    quote!(#commands #events)
}

fn commands<'m>(agg: &'m Aggregate<'_>) -> HandlerEnum<'m> {
    HandlerEnum {
        name: agg.command_enum(),
        doc: docs::command_enum_doc(agg),
        derives: &agg.args.command_derives,
        variants: agg
            .commands
            .iter()
            .map(|c| Variant {
                original: c.original,
                ident: &c.variant,
                params: &c.params,
                notes: docs::command_notes(agg, c),
                serde: Vec::new(),
            })
            .collect(),
    }
}

fn events<'m>(agg: &'m Aggregate<'_>) -> HandlerEnum<'m> {
    HandlerEnum {
        name: agg.event_enum(),
        doc: docs::event_enum_doc(agg),
        derives: &agg.args.event_derives,
        variants: agg
            .events
            .iter()
            .map(|e| {
                let stored = e.stored_name();
                let rename = (e.variant != stored).then(|| quote!(rename = #stored));
                let aliases = e.aliases.iter().map(|a| quote!(alias = #a));
                Variant {
                    original: e.original,
                    ident: &e.variant,
                    params: &e.params,
                    notes: docs::event_notes(agg, e),
                    serde: rename.into_iter().chain(aliases).collect(),
                }
            })
            .collect(),
    }
}

/// One enum: a variant per handler (the first of duplicates, which are reported), each with
/// the method's docs and a field per parameter.
fn handler_enum(agg: &Aggregate<'_>, mode: Mode, spec: &HandlerEnum<'_>) -> TokenStream {
    let name = &spec.name;
    let vis = vis(agg);
    let doc = doc_attrs(&spec.doc);
    let attrs = enum_attrs(agg, mode, spec.derives);
    let mut seen = Vec::new();
    let variants = spec.variants.iter().filter_map(|v| {
        if seen.contains(&v.ident) {
            return None;
        }
        seen.push(v.ident);
        let docs = variant_docs(v.original, &v.notes);
        let serde = &v.serde;
        let serde =
            (mode == Mode::Full && !serde.is_empty()).then(|| quote!(#[serde(#(#serde),*)]));
        let ident = v.ident;
        let fields = fields(agg, v.original, v.params);
        Some(quote!(#docs #serde #ident #fields))
    });
    let (generics, phantom) = match mode {
        Mode::Full => (TokenStream::new(), TokenStream::new()),
        Mode::Placeholder => placeholder_generics(agg, spec.variants.iter().flat_map(|v| v.params)),
    };
    quote! {
        #doc
        #attrs
        #vis enum #name #generics {
            #(#variants,)*
            #phantom
        }
    }
}

/// The derives of a full enum; a placeholder's only allows its being unused.
fn enum_attrs(agg: &Aggregate<'_>, mode: Mode, own_derives: &[Path]) -> TokenStream {
    if mode == Mode::Placeholder {
        return quote!(#[allow(dead_code)]);
    }
    let private = agg.private();
    let serde_crate = tokens::tidy(&format!("{private}::serde"));
    let extra = agg.args.derives.iter().chain(own_derives);
    // The enums are `pub` unless `vis` says otherwise, whatever the visibility of the types
    // in their fields: that is the macro's choice, not a mistake of the user's.
    quote! {
        #[allow(private_interfaces)]
        #[derive(
            #private::std::fmt::Debug,
            #private::std::clone::Clone,
            #private::std::cmp::PartialEq,
            #private::serde::Serialize,
            #private::serde::Deserialize,
            #(#extra,)*
        )]
        #[serde(crate = #serde_crate)]
    }
}

fn vis(agg: &Aggregate<'_>) -> TokenStream {
    match &agg.args.vis {
        Some(vis) => vis.to_token_stream(),
        None => quote!(pub),
    }
}

fn doc_attrs(lines: &[String]) -> TokenStream {
    lines.iter().map(|line| quote!(#[doc = #line])).collect()
}

/// The docs of a method, followed by `notes`.
fn variant_docs(method: &ImplItemFn, notes: &[String]) -> TokenStream {
    let own: TokenStream = method
        .attrs
        .iter()
        .filter(|a| a.path().is_ident(DOC))
        .filter(|a| matches!(a.meta, syn::Meta::NameValue(_)))
        .map(ToTokens::to_token_stream)
        .collect();
    let separator = if own.is_empty() {
        TokenStream::new()
    } else {
        quote!(#[doc = ""])
    };
    let notes = doc_attrs(notes);
    quote!(#own #separator #notes)
}

fn fields(agg: &Aggregate<'_>, method: &ImplItemFn, params: &[Param<'_>]) -> TokenStream {
    if params.is_empty() {
        return TokenStream::new();
    }
    let private = agg.private();
    let fields = params.iter().map(|p| {
        let doc = docs::field_doc(agg, &method.sig.ident, p);
        let serde = &p.serde;
        let ident = &p.ident;
        let ty = match &p.ty {
            FieldType::Plain(ty) => ty.to_token_stream(),
            FieldType::String => quote!(#private::std::string::String),
            FieldType::VecOf(ty) => quote!(#private::std::vec::Vec<#ty>),
        };
        quote!(#[doc = #doc] #(#serde)* #ident: #ty)
    });
    quote!({ #(#fields,)* })
}

/// For the placeholder enums of a generic impl (which is an error), the impl's parameters:
/// without bounds, and with defaults, so that the impl may name the enums with arguments
/// (`WalletEvent<T>`) or without (`WalletEvent`) and fields may use them. Parameters that no
/// field uses are held by a hidden variant. Empty for an impl without parameters.
fn placeholder_generics<'p>(
    agg: &Aggregate<'_>,
    params: impl Iterator<Item = &'p Param<'p>>,
) -> (TokenStream, TokenStream) {
    let generics = &agg.original.generics.params;
    if generics.is_empty() {
        return (TokenStream::new(), TokenStream::new());
    }
    let mut used = Vec::new();
    for p in params {
        let ty = match &p.ty {
            FieldType::Plain(ty) | FieldType::VecOf(ty) => ty.to_token_stream(),
            FieldType::String => continue,
        };
        tokens::idents(ty, &mut used);
    }
    let mut declared = Vec::new();
    let mut unused = Vec::new();
    for param in generics {
        match param {
            syn::GenericParam::Lifetime(l) => {
                let lifetime = &l.lifetime;
                declared.push(quote!(#lifetime));
                unused.push(quote!(&#lifetime ()));
            }
            syn::GenericParam::Type(t) => {
                let ident = &t.ident;
                declared.push(quote!(#ident = ()));
                if !used.contains(&t.ident.to_string()) {
                    unused.push(quote!(#ident));
                }
            }
            syn::GenericParam::Const(c) => {
                let (ident, ty) = (&c.ident, &c.ty);
                let default = if matches!(ty, syn::Type::Path(p) if p.path.is_ident("bool")) {
                    quote!(false)
                } else {
                    quote!({ <#ty>::MIN })
                };
                declared.push(quote!(const #ident: #ty = #default));
            }
        }
    }
    let phantom = if unused.is_empty() {
        TokenStream::new()
    } else {
        let private = agg.private();
        quote!(#[doc(hidden)] __Unused(#private::std::marker::PhantomData<(#(#unused,)*)>),)
    };
    (quote!(<#(#declared),*>), phantom)
}
