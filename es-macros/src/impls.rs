//! The trait impls of a valid aggregate: `DomainEvent` for the event enum, and `Aggregate`,
//! which dispatches each command and event to its method.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;

use crate::model::{Aggregate, Command, Form, Param};
use crate::{schema, spans, upcasts};

/// `DomainEvent` for the event enum: its stored names and category.
pub(crate) fn domain_event(agg: &Aggregate<'_>) -> TokenStream {
    let private = agg.private();
    let name = agg.event_enum();
    // Every name a stored event of this enum may have: the current ones, their aliases, and
    // the retired names that upcasts read.
    let mut types: Vec<String> = Vec::new();
    let names = agg.events.iter().flat_map(|e| {
        std::iter::once(e.stored_name()).chain(e.aliases.iter().map(syn::LitStr::value))
    });
    for name in names.chain(agg.upcasts.iter().map(crate::model::Upcast::source_name)) {
        if !types.contains(&name) {
            types.push(name);
        }
    }
    let arms = agg.events.iter().map(|e| {
        let variant = &e.variant;
        let stored = e.stored_name();
        quote!(Self::#variant { .. } => #stored,)
    });
    let version_arms = agg.events.iter().map(|e| {
        let variant = &e.variant;
        let version = e.version();
        quote!(Self::#variant { .. } => #version,)
    });
    let (event_type, version, payload) = upcasts::idents();
    let decode_stored = upcasts::decode_stored(agg);
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

            fn event_version(&self) -> u32 {
                match *self {
                    #(#version_arms)*
                }
            }

            fn decode_stored(
                #event_type: &str,
                #version: u32,
                #payload: &[u8],
            ) -> #private::std::result::Result<
                #private::Upcast<Self>,
                #private::StoredEventError,
            > {
                #decode_stored
            }
        }
    }
}

/// `Aggregate` for the state type: the enums, the options, dispatch and the schema.
pub(crate) fn aggregate(agg: &Aggregate<'_>) -> TokenStream {
    let private = agg.private();
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
    let services = format_ident!("services", span = Span::mixed_site());
    let handle_arms = agg
        .commands
        .iter()
        .map(|c| handle_arm(agg, c, &command_enum, &emit, &services));
    let handle = handle_methods(agg, handle_arms, &emit, &services);
    let services_ty = match &agg.args.services {
        Some(ty) => ty.to_token_stream(),
        None => quote!(()),
    };
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
            let call = spans::located_at(
                quote!(Self::#method(self, #(#args),*)),
                e.original.sig.ident.span(),
            );
            quote!(#pattern => #call,)
        })
    };
    let (apply_arms, apply_ref_arms) = (arms(false), arms(true));
    // An event enum without variants is matched through the reference (no arms needed).
    let deref = agg.events.is_empty().then(|| quote!(*));
    let schema = schema::expand(agg);
    let header = spans::located_at(
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
            type Services = #services_ty;

            fn handle(
                &self,
                command: #command_enum,
            ) -> #private::std::result::Result<#private::std::vec::Vec<#event_enum>, #error> {
                let mut events = #private::std::vec::Vec::new();
                <Self as #private::Aggregate>::handle_with(self, command, &mut |e| events.push(e))?;
                #private::std::result::Result::Ok(events)
            }

            #handle

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

/// `handle_with`, which dispatches each command to its method; or, when commands consult
/// services, `handle_with_services`, and a `handle_with` that has none to give them.
fn handle_methods(
    agg: &Aggregate<'_>,
    arms: impl Iterator<Item = TokenStream>,
    emit: &syn::Ident,
    services: &syn::Ident,
) -> TokenStream {
    let private = agg.private();
    let command_enum = agg.command_enum();
    let event_enum = agg.event_enum();
    let error = match agg.error_type() {
        Some(error) => error.to_token_stream(),
        None => quote!(#private::std::convert::Infallible),
    };
    let result = quote!(#private::std::result::Result<(), #error>);
    let emit_ty = quote!(&mut impl #private::std::ops::FnMut(#event_enum));
    let Some(services_ty) = &agg.args.services else {
        return quote! {
            fn handle_with(&self, command: #command_enum, #emit: #emit_ty) -> #result {
                match command {
                    #(#arms)*
                }
            }
        };
    };
    let message = format!(
        "the commands of `{}` consult `{}`: run them through `Aggregate::handle_with_services` \
         (a host built with `.services(...)`, or `AggregateTest::with_services`), not `handle`",
        crate::tokens::type_string(&agg.original.self_ty),
        crate::tokens::type_string(services_ty),
    );
    quote! {
        fn handle_with(&self, command: #command_enum, #emit: #emit_ty) -> #result {
            let _ = (command, #emit);
            #private::std::panic!(#message)
        }

        fn handle_with_services(
            &self,
            command: #command_enum,
            #services: &#services_ty,
            #emit: #emit_ty,
        ) -> #result {
            match command {
                #(#arms)*
            }
        }
    }
}

/// One arm of `handle_with`: calls the command's method (with the services, if it takes them)
/// and passes its events to `emit`.
fn handle_arm(
    agg: &Aggregate<'_>,
    c: &Command<'_>,
    command_enum: &syn::Ident,
    emit: &syn::Ident,
    services: &syn::Ident,
) -> TokenStream {
    let private = agg.private();
    let (pattern, args) = bind(command_enum, &c.variant, &c.params);
    let method = &c.original.sig.ident;
    let output = c
        .output
        .as_ref()
        .expect("a command without a supported return type fails validation");
    let span = output
        .ty
        .map_or_else(|| c.original.sig.ident.span(), Spanned::span);
    let at = c.original.sig.ident.span();
    let mut args: Vec<TokenStream> = args
        .into_iter()
        .map(|arg| spans::located_at(arg, at))
        .collect();
    if let Some(param) = &c.services {
        // Located at the parameter's type, so a type that is not the declared one is
        // reported there.
        let arg = spans::located_at(quote!(#services), param.ty.span());
        args.insert(param.index.min(args.len()), arg);
    }
    let head = spans::located_at(quote!(Self::#method), at);
    let receiver = spans::located_at(quote!(self), at);
    let mut list = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(#receiver, #(#args),*),
    );
    list.set_span(list.span().located_at(at));
    let call = quote!(#head #list);
    let events = format_ident!("events", span = Span::mixed_site());
    let vec = quote!(#private::std::vec::Vec);
    let event_enum = agg.event_enum();
    // Fully qualified, so no trait the user imports can make the calls ambiguous.
    let iter = quote!(#private::std::iter);
    let pass_on =
        quote!(#iter::Iterator::for_each(#iter::IntoIterator::into_iter(#events), &mut *#emit););
    // Located at the return type, so a return type that is not made of events is reported
    // there.
    let convert = spans::located_at(
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
