//! The pipeline, and the code generated for a valid aggregate.

use proc_macro2::{Group, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{ImplItem, ItemImpl};

use crate::args::Args;
use crate::ctxt::Ctxt;
use crate::docs;
use crate::model::{Aggregate, Command, Event, FieldType, Form, Param, ReplaceSelf};
use crate::symbol::SERDE;
use crate::{fallback, handler_args, tokens, validate};

/// `#[aggregate]`: parse the arguments, read the impl block into a model, check it, expand.
pub(crate) fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &input,
                "`#[aggregate]` goes on an impl block with `#[command]` and `#[event]` \
                 methods, like `impl BankAccount { ... }`",
            )
            .into_compile_error();
            return quote!(#error #input);
        }
    };
    let cx = Ctxt::new();
    let args = Args::parse(&cx, args);
    let agg = Aggregate::from_impl(&cx, args, &item);
    validate::check(&cx, &agg);
    match cx.check() {
        Ok(()) => expand(&agg),
        Err(errors) => fallback::expand(&agg, &errors),
    }
}

/// The path through which generated code names the runtime: `::es::__private`.
pub(crate) fn private(agg: &Aggregate<'_>) -> TokenStream {
    match &agg.args.krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::es::__private),
    }
}

fn expand(agg: &Aggregate<'_>) -> TokenStream {
    let user_impl = stripped(agg.original);
    let checks = checks(agg);
    let command_enum = command_enum(agg, true);
    let event_enum = event_enum(agg, true);
    let domain_event = domain_event_impl(agg);
    let aggregate = aggregate_impl(agg);
    quote! {
        #user_impl
        #checks
        #command_enum
        #event_enum
        #domain_event
        #aggregate
    }
}

/// Assertions on the types the user chose, each reported on the type with a message in the
/// terms of the macro, before rustc's errors in the generated code (the serde derives, the
/// `Aggregate` impl), which name traits and bounds the user never wrote.
///
/// They are bounds of a struct's `where` clause, which rustc checks before any function body
/// (where the derives' errors are), each on a helper trait whose `on_unimplemented` message
/// it reports; `do_not_recommend` keeps it from reporting the std or serde bound behind the
/// helper's impl instead. Fields are asserted `Deserialize<'static>`, the least the derive
/// may need.
fn checks(agg: &Aggregate<'_>) -> TokenStream {
    let private = private(agg);
    let mut bounds = Vec::new();
    if let Some(error) = agg.error_type() {
        let mut error = error.clone();
        ReplaceSelf(&agg.original.self_ty).visit_type_mut(&mut error);
        // `Self::Assoc` means nothing outside the impl; leave such a type to rustc.
        if !mentions_self(error.to_token_stream()) {
            bounds.push(bound(&error, quote!(__AggregateError)));
        }
    }
    let mut leaves = Vec::new();
    let params = agg
        .commands
        .iter()
        .flat_map(|c| &c.params)
        .chain(agg.events.iter().flat_map(|e| &e.params));
    for param in params.filter(|p| plain_serde(p)) {
        match &param.ty {
            FieldType::Plain(ty) | FieldType::VecOf(ty) => serde_leaves(ty, &mut leaves),
            FieldType::String => {}
        }
    }
    let mut seen = Vec::new();
    for ty in leaves {
        let key = tokens::type_string(ty);
        if seen.contains(&key) || mentions_self(ty.to_token_stream()) {
            continue;
        }
        seen.push(key);
        bounds.push(bound(ty, quote!(__EventField)));
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

            #[allow(dead_code)]
            struct __Checks where #(#bounds,)*;
        };
    }
}

/// `ty: Trait`, reported on the whole of `ty`: the added tokens take the span of its last
/// token, so the predicate spans from its first to its last.
fn bound(ty: &syn::Type, trait_: TokenStream) -> TokenStream {
    let tokens = ty.to_token_stream();
    let last = match tokens.clone().into_iter().last() {
        Some(TokenTree::Group(g)) => g.span_close(),
        Some(tt) => tt.span(),
        None => Span::call_site(),
    };
    let rest: TokenStream = quote!(: #trait_)
        .into_iter()
        .map(|mut tt| {
            tt.set_span(last);
            tt
        })
        .collect();
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

/// The impl block as written, less the attributes that only the macro understands.
pub(crate) fn stripped(original: &ItemImpl) -> ItemImpl {
    let mut item = original.clone();
    for it in &mut item.items {
        let ImplItem::Fn(method) = it else { continue };
        if !method
            .attrs
            .iter()
            .any(|a| handler_args::handler_kind(a).is_some())
        {
            continue;
        }
        method
            .attrs
            .retain(|a| handler_args::handler_kind(a).is_none());
        // The macro requires the receiver, so a handler that does not read the state still
        // takes it.
        method
            .attrs
            .push(syn::parse_quote!(#[allow(clippy::unused_self)]));
        for arg in &mut method.sig.inputs {
            if let syn::FnArg::Typed(pat_type) = arg {
                pat_type.attrs.retain(|a| !a.path().is_ident(SERDE));
            }
        }
    }
    item
}

fn doc_attrs(lines: &[String]) -> TokenStream {
    lines.iter().map(|line| quote!(#[doc = #line])).collect()
}

/// The docs of a method, followed by `notes`.
fn variant_docs(method: &syn::ImplItemFn, notes: &[String]) -> TokenStream {
    let own: TokenStream = method
        .attrs
        .iter()
        .filter(|a| a.path().is_ident(crate::symbol::DOC))
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

fn enum_attrs(agg: &Aggregate<'_>, full: bool, own_derives: &[syn::Path]) -> TokenStream {
    let private = private(agg);
    if !full {
        return quote!(#[allow(dead_code)]);
    }
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

fn fields(agg: &Aggregate<'_>, method: &syn::ImplItemFn, params: &[Param<'_>]) -> TokenStream {
    if params.is_empty() {
        return TokenStream::new();
    }
    let private = private(agg);
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

/// The command enum; `full` adds derives (left out of the fallback).
pub(crate) fn command_enum(agg: &Aggregate<'_>, full: bool) -> TokenStream {
    let name = agg.command_enum();
    let vis = vis(agg);
    let doc = doc_attrs(&docs::command_enum_doc(agg));
    let attrs = enum_attrs(agg, full, &agg.args.command_derives);
    let mut seen = Vec::new();
    let variants = agg.commands.iter().filter_map(|c: &Command<'_>| {
        if seen.contains(&c.variant) {
            return None;
        }
        seen.push(c.variant.clone());
        let docs = variant_docs(c.original, &docs::command_notes(agg, c));
        let variant = &c.variant;
        let fields = fields(agg, c.original, &c.params);
        Some(quote!(#docs #variant #fields))
    });
    let (generics, phantom) = if full {
        (TokenStream::new(), TokenStream::new())
    } else {
        placeholder_generics(agg, agg.commands.iter().flat_map(|c| &c.params))
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

/// The event enum; `full` adds derives and serde names (left out of the fallback).
pub(crate) fn event_enum(agg: &Aggregate<'_>, full: bool) -> TokenStream {
    let name = agg.event_enum();
    let vis = vis(agg);
    let doc = doc_attrs(&docs::event_enum_doc(agg));
    let attrs = enum_attrs(agg, full, &agg.args.event_derives);
    let mut seen = Vec::new();
    let variants = agg.events.iter().filter_map(|e: &Event<'_>| {
        if seen.contains(&e.variant) {
            return None;
        }
        seen.push(e.variant.clone());
        let docs = variant_docs(e.original, &docs::event_notes(agg, e));
        let variant = &e.variant;
        let stored = e.stored_name();
        let mut serde = Vec::new();
        if full && *variant != stored {
            serde.push(quote!(rename = #stored));
        }
        if full {
            serde.extend(e.aliases.iter().map(|a| quote!(alias = #a)));
        }
        let serde = (!serde.is_empty()).then(|| quote!(#[serde(#(#serde),*)]));
        let fields = fields(agg, e.original, &e.params);
        Some(quote!(#docs #serde #variant #fields))
    });
    let (generics, phantom) = if full {
        (TokenStream::new(), TokenStream::new())
    } else {
        placeholder_generics(agg, agg.events.iter().flat_map(|e| &e.params))
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
        let private = private(agg);
        quote!(#[doc(hidden)] __Unused(#private::std::marker::PhantomData<(#(#unused,)*)>),)
    };
    (quote!(<#(#declared),*>), phantom)
}

fn vis(agg: &Aggregate<'_>) -> TokenStream {
    match &agg.args.vis {
        Some(vis) => vis.to_token_stream(),
        None => quote!(pub),
    }
}

fn domain_event_impl(agg: &Aggregate<'_>) -> TokenStream {
    let private = private(agg);
    let name = agg.event_enum();
    let types = agg.events.iter().flat_map(|e| {
        std::iter::once(e.stored_name()).chain(e.aliases.iter().map(syn::LitStr::value))
    });
    let arms = agg.events.iter().map(|e| {
        let variant = &e.variant;
        let stored = e.stored_name();
        quote!(Self::#variant { .. } => #stored,)
    });
    let category = agg.stream_category();
    quote! {
        #[automatically_derived]
        impl #private::DomainEvent for #name {
            const TYPES: &'static [&'static str] = &[#(#types),*];
            const CATEGORIES: &'static [&'static str] = &[#category];

            fn event_type(&self) -> &'static str {
                match *self {
                    #(#arms)*
                }
            }
        }
    }
}

/// The pattern binding a variant's fields, and the arguments passing them to the method.
fn bind(
    enum_name: &syn::Ident,
    variant: &syn::Ident,
    params: &[Param<'_>],
) -> (TokenStream, Vec<TokenStream>) {
    let idents: Vec<_> = params.iter().map(|p| &p.ident).collect();
    let pattern = if params.is_empty() {
        quote!(#enum_name::#variant)
    } else {
        quote!(#enum_name::#variant { #(#idents),* })
    };
    let args = params
        .iter()
        .map(|p| {
            let ident = &p.ident;
            if p.by_ref {
                quote!(&#ident)
            } else {
                quote!(#ident)
            }
        })
        .collect();
    (pattern, args)
}

fn aggregate_impl(agg: &Aggregate<'_>) -> TokenStream {
    let private = private(agg);
    let self_ty = &agg.original.self_ty;
    let command_enum = agg.command_enum();
    let event_enum = agg.event_enum();
    let name = agg.stream_category();
    let error = match agg.error_type() {
        Some(error) => error.to_token_stream(),
        None => quote!(#private::std::convert::Infallible),
    };
    let args = &agg.args;
    let consts = [
        (
            args.state_version.map(Literal::u32_unsuffixed),
            quote!(STATE_VERSION),
            quote!(u32),
        ),
        (
            args.snapshot_every.map(Literal::u64_unsuffixed),
            quote!(SNAPSHOT_EVERY),
            quote!(u64),
        ),
        (
            args.snapshot_keep.map(Literal::usize_unsuffixed),
            quote!(SNAPSHOT_KEEP),
            quote!(usize),
        ),
    ]
    .into_iter()
    .filter_map(|(value, name, ty)| value.map(|value| quote!(const #name: #ty = #value;)));

    let emit = format_ident!("emit", span = Span::mixed_site());
    let handle_arms = agg
        .commands
        .iter()
        .map(|c| handle_arm(agg, c, &command_enum, &emit));
    // `apply` moves each field into its method (lending those taken by `&`); `apply_ref` matches
    // a borrowed event, so its fields are references: lent as they are, or cloned for a
    // by-value parameter.
    let (event_enum_ref, private_ref) = (&event_enum, &private);
    let arms = |borrowed: bool| {
        agg.events.iter().map(move |e| {
            let (event_enum, private) = (event_enum_ref, private_ref);
            let (pattern, moved) = bind(event_enum, &e.variant, &e.params);
            let args: Vec<TokenStream> = if borrowed {
                e.params
                    .iter()
                    .map(|p| {
                        let ident = &p.ident;
                        if p.by_ref {
                            quote!(#ident)
                        } else {
                            quote!(#private::std::clone::Clone::clone(#ident))
                        }
                    })
                    .collect()
            } else {
                moved
            };
            let method = &e.original.sig.ident;
            let call = located_at(
                quote!(Self::#method(self, #(#args),*)),
                e.original.sig.ident.span(),
            );
            quote!(#pattern => #call,)
        })
    };
    let (apply_arms, apply_ref_arms) = (arms(false), arms(true));
    // An event enum without variants is matched through the reference (no arms needed).
    let deref = agg.events.is_empty().then(|| quote!(*));
    let schema = schema(agg);
    let header = located_at(
        quote!(impl #private::Aggregate for #self_ty),
        self_ty.span(),
    );
    quote! {
        #[automatically_derived]
        #header {
            const NAME: &'static str = #name;
            #(#consts)*
            type Command = #command_enum;
            type Event = #event_enum;
            type Error = #error;

            fn handle(
                &self,
                command: #command_enum,
            ) -> #private::std::result::Result<#private::std::vec::Vec<#event_enum>, #error> {
                let mut events = #private::std::vec::Vec::new();
                <Self as #private::Aggregate>::handle_with(self, command, &mut |e| events.push(e))?;
                #private::std::result::Result::Ok(events)
            }

            fn handle_with(
                &self,
                command: #command_enum,
                #emit: &mut impl #private::std::ops::FnMut(#event_enum),
            ) -> #private::std::result::Result<(), #error> {
                match command {
                    #(#handle_arms)*
                }
            }

            fn apply(&mut self, event: #event_enum) {
                match event {
                    #(#apply_arms)*
                }
            }

            fn apply_ref(&mut self, event: &#event_enum) {
                match #deref event {
                    #(#apply_ref_arms)*
                }
            }

            fn schema() -> &'static #private::AggregateSchema {
                #schema
            }
        }
    }
}

/// One arm of `handle_with`: calls the command's method and passes its events to `emit`.
fn handle_arm(
    agg: &Aggregate<'_>,
    c: &Command<'_>,
    command_enum: &syn::Ident,
    emit: &syn::Ident,
) -> TokenStream {
    let private = private(agg);
    let (pattern, args) = bind(command_enum, &c.variant, &c.params);
    let method = &c.original.sig.ident;
    let output = c
        .output
        .as_ref()
        .expect("a command without a supported return type fails validation");
    let span = output
        .ty
        .map_or_else(|| c.original.sig.ident.span(), Spanned::span);
    let call = located_at(
        quote!(Self::#method(self, #(#args),*)),
        c.original.sig.ident.span(),
    );
    let events = format_ident!("events", span = Span::mixed_site());
    let vec = quote!(#private::std::vec::Vec);
    let event_enum = agg.event_enum();
    // Fully qualified, so no trait the user imports can make the calls ambiguous.
    let iter = quote!(#private::std::iter);
    let pass_on =
        quote!(#iter::Iterator::for_each(#iter::IntoIterator::into_iter(#events), &mut *#emit););
    // Located at the return type, so a return type that is not made of events is reported
    // there.
    let convert = located_at(
        match output.form {
            Form::One => quote!({
                let #events: #event_enum = #events;
                #emit(#events);
            }),
            Form::Vec => quote!({
                let #events: #vec<#event_enum> = #events;
                #pass_on
            }),
            Form::Option => quote!({
                let #events: #private::std::option::Option<#event_enum> = #events;
                #pass_on
            }),
            Form::Array => quote!({
                let #events: [#event_enum; _] = #events;
                #pass_on
            }),
            Form::Nothing => quote!({
                let () = #events;
            }),
        },
        span,
    );
    let ok = quote!(#private::std::result::Result::Ok);
    let body = if output.fallible {
        let err = quote!(#private::std::result::Result::Err);
        let error = format_ident!("error", span = Span::mixed_site());
        quote! {
            match #call {
                #ok(#events) => #ok(#convert),
                #err(#error) => #err(#error),
            }
        }
    } else {
        quote! {{
            let #events = #call;
            #ok(#convert)
        }}
    };
    quote!(#pattern => #body,)
}

/// `tokens`, reported at `span` but resolved as they were (so hygiene is unchanged).
fn located_at(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut group = Group::new(g.delimiter(), located_at(g.stream(), span));
                group.set_span(g.span().located_at(span));
                tt = TokenTree::Group(group);
            } else {
                tt.set_span(tt.span().located_at(span));
            }
            tt
        })
        .collect()
}

/// The body of `Aggregate::schema`: a static built from the model.
fn schema(agg: &Aggregate<'_>) -> TokenStream {
    let private = private(agg);
    let field_list = |params: &[Param<'_>]| {
        let fields = params.iter().map(|p| {
            let name = p.ident.to_string();
            let name = name.strip_prefix("r#").unwrap_or(&name).to_owned();
            let ty = docs::field_type_string(p);
            quote!(#private::FieldSchema::new(#name, #ty))
        });
        quote!(&[#(#fields),*])
    };
    let commands = agg.commands.iter().map(|c| {
        let name = c.variant.to_string();
        let method = c.original.sig.ident.to_string();
        let doc = docs::doc_text(&c.original.attrs);
        let fields = field_list(&c.params);
        let emits = agg.emits(c).iter().map(ToString::to_string).collect::<Vec<_>>();
        let fallible = c.output.as_ref().is_some_and(|o| o.fallible);
        quote!(#private::CommandSchema::new(#name, #method, #doc, #fields, &[#(#emits),*], #fallible))
    });
    let events = agg.events.iter().map(|e| {
        let name = e.variant.to_string();
        let stored = e.stored_name();
        let aliases = &e.aliases;
        let method = e.original.sig.ident.to_string();
        let doc = docs::doc_text(&e.original.attrs);
        let fields = field_list(&e.params);
        quote!(#private::EventSchema::new(#name, #stored, &[#(#aliases),*], #method, #doc, #fields))
    });
    let name = agg.stream_category();
    let type_name = agg
        .ident
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let doc = docs::doc_text(&agg.original.attrs);
    let fallible = agg
        .commands
        .iter()
        .any(|c| c.output.as_ref().is_some_and(|o| o.fallible));
    let error = match agg.error_type() {
        Some(error) if fallible || agg.args.error.is_some() => {
            let error = tokens::type_string(error);
            quote!(#private::std::option::Option::Some(#error))
        }
        _ => quote!(#private::std::option::Option::None),
    };
    let state_version = agg.args.state_version.unwrap_or(1);
    quote! {
        static SCHEMA: #private::AggregateSchema = #private::AggregateSchema::new(
            #name,
            #type_name,
            #doc,
            #error,
            #state_version,
            &[#(#commands),*],
            &[#(#events),*],
        );
        &SCHEMA
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    /// The `where` clause of the checks emitted for an impl block, and whether they come
    /// before the enums.
    fn checks(input: TokenStream) -> (String, bool) {
        let out = super::aggregate(TokenStream::new(), input).to_string();
        let at = out.find("struct __Checks").expect("the checks are emitted");
        let clause = &out[at..];
        let clause = clause[..clause.find(';').unwrap()].to_owned();
        (clause, at < out.find("enum ").unwrap())
    }

    #[test]
    fn field_and_error_types_are_asserted_before_the_enums() {
        let (clause, first) = checks(quote! {
            impl Cart {
                #[command]
                fn add(
                    &self,
                    items: Vec<Item>,
                    note: &str,
                    #[serde(with = "opaque")] tag: Opaque,
                    #[serde(default)] count: Count,
                ) -> Result<CartEvent, CartError> {
                    todo!()
                }

                #[event]
                fn added(&mut self, item: (Item, Self)) {}
            }
        });
        assert!(first);
        assert!(clause.contains("CartError : __AggregateError"), "{clause}");
        // Elements of collections and tuples are asserted themselves, each type once.
        assert_eq!(clause.matches("Item : __EventField").count(), 1, "{clause}");
        assert!(!clause.contains("Vec"), "{clause}");
        assert!(clause.contains("Cart : __EventField"), "{clause}");
        assert!(clause.contains("Count : __EventField"), "{clause}");
        // A field serialized `with` a module need not implement the serde traits.
        assert!(!clause.contains("Opaque"), "{clause}");
    }

    #[test]
    fn an_infallible_aggregate_has_no_error_type_to_assert() {
        let (clause, _) = checks(quote! {
            impl Notes {
                #[command]
                fn add(&self, text: &str) -> NotesEvent {
                    todo!()
                }

                #[event]
                fn added(&mut self, text: String) {}
            }
        });
        assert!(!clause.contains("__AggregateError"), "{clause}");
        assert!(clause.contains("String : __EventField"), "{clause}");
    }
}
