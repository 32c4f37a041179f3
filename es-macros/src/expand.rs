//! The pipeline, and the code generated for a valid aggregate.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::{ImplItem, ItemImpl};

use crate::args::Args;
use crate::ctxt::Ctxt;
use crate::docs;
use crate::model::{self, Aggregate, Command, Event, FieldType, Form, Param};
use crate::symbol::SERDE;
use crate::{fallback, validate};

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
    let command_enum = command_enum(agg, true);
    let event_enum = event_enum(agg, true);
    let domain_event = domain_event_impl(agg);
    let aggregate = aggregate_impl(agg);
    quote! {
        #user_impl
        #command_enum
        #event_enum
        #domain_event
        #aggregate
    }
}

/// The impl block as written, less the attributes that only the macro understands.
pub(crate) fn stripped(original: &ItemImpl) -> ItemImpl {
    let mut item = original.clone();
    for it in &mut item.items {
        let ImplItem::Fn(method) = it else { continue };
        if !method
            .attrs
            .iter()
            .any(|a| model::handler_kind(a).is_some())
        {
            continue;
        }
        method.attrs.retain(|a| model::handler_kind(a).is_none());
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
    let serde_crate = docs::tidy(&format!("{private}::serde"));
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
    quote! {
        #doc
        #attrs
        #vis enum #name {
            #(#variants,)*
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
    quote! {
        #doc
        #attrs
        #vis enum #name {
            #(#variants,)*
        }
    }
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
    let consts = [
        (&agg.args.state_version, quote!(STATE_VERSION), quote!(u32)),
        (
            &agg.args.snapshot_every,
            quote!(SNAPSHOT_EVERY),
            quote!(u64),
        ),
        (
            &agg.args.snapshot_keep,
            quote!(SNAPSHOT_KEEP),
            quote!(usize),
        ),
    ]
    .into_iter()
    .filter_map(|(lit, name, ty)| {
        let value = lit.as_ref()?.base10_digits().parse::<u64>().ok()?;
        let value = proc_macro2::Literal::u64_unsuffixed(value);
        Some(quote!(const #name: #ty = #value;))
    });

    let handle_arms = agg
        .commands
        .iter()
        .map(|c| handle_arm(agg, c, &command_enum));
    let apply_arms = agg.events.iter().map(|e| {
        let (pattern, args) = bind(&event_enum, &e.variant, &e.params);
        let method = &e.original.sig.ident;
        let call = located_at(
            quote!(Self::#method(self, #(#args),*)),
            e.original.sig.ident.span(),
        );
        quote!(#pattern => #call,)
    });
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
                match command {
                    #(#handle_arms)*
                }
            }

            fn apply(&mut self, event: #event_enum) {
                match event {
                    #(#apply_arms)*
                }
            }

            fn schema() -> &'static #private::AggregateSchema {
                #schema
            }
        }
    }
}

fn handle_arm(agg: &Aggregate<'_>, c: &Command<'_>, command_enum: &syn::Ident) -> TokenStream {
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
    // Located at the return type, so a return type that is not made of events is reported
    // there.
    let convert = located_at(
        match output.form {
            Form::One => quote!({
                let #events: #event_enum = #events;
                #vec::from([#events])
            }),
            Form::Vec => quote!({
                let #events: #vec<#event_enum> = #events;
                #events
            }),
            Form::Option => quote!({
                let #events: #private::std::option::Option<#event_enum> = #events;
                <#vec<#event_enum> as #private::std::iter::FromIterator<#event_enum>>::from_iter(#events)
            }),
            Form::Array => quote!({
                let #events: [#event_enum; _] = #events;
                #vec::from(#events)
            }),
            Form::Nothing => quote!({
                let () = #events;
                #vec::<#event_enum>::new()
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
        let doc = model::doc_text(&c.original.attrs);
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
        let doc = model::doc_text(&e.original.attrs);
        let fields = field_list(&e.params);
        quote!(#private::EventSchema::new(#name, #stored, &[#(#aliases),*], #method, #doc, #fields))
    });
    let name = agg.stream_category();
    let type_name = agg
        .ident
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let doc = model::doc_text(&agg.original.attrs);
    let fallible = agg
        .commands
        .iter()
        .any(|c| c.output.as_ref().is_some_and(|o| o.fallible));
    let error = match agg.error_type() {
        Some(error) if fallible || agg.args.error.is_some() => {
            let error = docs::type_string(error);
            quote!(#private::std::option::Option::Some(#error))
        }
        _ => quote!(#private::std::option::Option::None),
    };
    let state_version = agg
        .args
        .state_version
        .as_ref()
        .and_then(|l| l.base10_parse::<u32>().ok())
        .unwrap_or(1);
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
