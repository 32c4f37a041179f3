//! `DomainEvent::decode_stored` of a valid aggregate: each current shape decodes as itself,
//! each past one through its `#[upcast]` function.
//!
//! A past shape is read by a private enum made for its arm: one variant, renamed to the
//! stored type name, whose fields are the upcast's parameters, so that its payload is read
//! exactly as the event enum of that time would have read it.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;

use crate::model::{Aggregate, FieldType, Form, Upcast};
use crate::{spans, tokens};

/// The body of `decode_stored(event_type, version, payload)`.
pub(crate) fn decode_stored(agg: &Aggregate<'_>) -> TokenStream {
    let private = agg.private();
    let upcast = quote!(#private::Upcast);
    let error = quote!(#private::StoredEventError);
    let (event_type, version, payload) = idents();
    let current = agg.events.iter().map(|e| {
        let names =
            std::iter::once(e.stored_name()).chain(e.aliases.iter().map(syn::LitStr::value));
        let v = e.version();
        quote!((#(#names)|*, #v))
    });
    let past = agg.upcasts.iter().map(|u| past_arm(agg, u));
    let current_arm = (!agg.events.is_empty()).then(|| {
        quote! {
            #(#current)|* => #private::std::result::Result::map_err(
                #private::std::result::Result::map(#private::decode(#payload), #upcast::One),
                #error::Payload,
            ),
        }
    });
    if agg.upcasts.is_empty() {
        // Every shape is at version 1 (a later one needs an upcast): the payload names its
        // variant, and the type name is looked at only to say what went wrong.
        return quote! {
            if #version == 1 {
                #private::std::result::Result::map_err(
                    #private::std::result::Result::map(#private::decode(#payload), #upcast::One),
                    #error::Payload,
                )
            } else if <Self as #private::DomainEvent>::TYPES.contains(&#event_type) {
                #private::std::result::Result::Err(#error::UnknownVersion)
            } else {
                #private::std::result::Result::Err(#error::UnknownType)
            }
        };
    }
    quote! {
        match (#event_type, #version) {
            #current_arm
            #(#past)*
            (#event_type, _) if <Self as #private::DomainEvent>::TYPES.contains(&#event_type) => {
                #private::std::result::Result::Err(#error::UnknownVersion)
            }
            // An unknown type name is still tried, as events without versions are: the
            // payload names its variant.
            (_, 1) => #private::std::result::Result::map_err(
                #private::std::result::Result::map(#private::decode(#payload), #upcast::One),
                #error::Payload,
            ),
            _ => #private::std::result::Result::Err(#error::UnknownType),
        }
    }
}

/// The parameters of `decode_stored`, unnameable by user code.
pub(crate) fn idents() -> (syn::Ident, syn::Ident, syn::Ident) {
    let at = Span::mixed_site();
    (
        format_ident!("event_type", span = at),
        format_ident!("version", span = at),
        format_ident!("payload", span = at),
    )
}

fn past_arm(agg: &Aggregate<'_>, u: &Upcast<'_>) -> TokenStream {
    let private = agg.private();
    let serde_crate = tokens::tidy(&format!("{private}::serde"));
    let (_, _, payload) = idents();
    let name = u.source_name();
    let v = u.version();
    let stored = format_ident!("__Stored", span = Span::mixed_site());
    let fields: Vec<TokenStream> = u
        .params
        .iter()
        .map(|p| {
            let serde = &p.serde;
            let ident = &p.ident;
            let ty = match &p.ty {
                FieldType::Plain(ty) => quote!(#ty),
                FieldType::String => quote!(#private::std::string::String),
                FieldType::VecOf(ty) => quote!(#private::std::vec::Vec<#ty>),
            };
            quote!(#(#serde)* #ident: #ty)
        })
        .collect();
    let idents: Vec<_> = u.params.iter().map(|p| &p.ident).collect();
    let (variant, pattern) = if fields.is_empty() {
        (quote!(__V), quote!(#stored::__V))
    } else {
        (
            quote!(__V { #(#fields,)* }),
            quote!(#stored::__V { #(#idents),* }),
        )
    };
    let args = u.params.iter().map(|p| {
        let ident = &p.ident;
        if p.by_ref {
            quote!(&#ident)
        } else {
            quote!(#ident)
        }
    });
    let self_ty = &agg.original.self_ty;
    let function = &u.original.sig.ident;
    let call = spans::located_at(
        quote!(<#self_ty>::#function(#(#args),*)),
        u.original.sig.ident.span(),
    );
    let event_enum = agg.event_enum();
    let events = format_ident!("events", span = Span::mixed_site());
    let ty = match u
        .form
        .expect("an upcast without a supported return type fails validation")
    {
        Form::Vec => quote!(#private::std::vec::Vec<#event_enum>),
        Form::Option => quote!(#private::std::option::Option<#event_enum>),
        _ => quote!(#event_enum),
    };
    let span = match &u.original.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => u.original.sig.ident.span(),
    };
    // Located at the return type, so a return type that is not the event enum is reported
    // there.
    let typed = spans::located_at(quote!(let #events: #ty = #call;), span);
    quote! {
        (#name, #v) => {
            #[derive(#private::serde::Deserialize)]
            #[serde(crate = #serde_crate)]
            enum #stored {
                #[serde(rename = #name)]
                #variant
            }
            let #pattern = match #private::decode(#payload) {
                #private::std::result::Result::Ok(stored) => stored,
                #private::std::result::Result::Err(e) => {
                    return #private::std::result::Result::Err(
                        #private::StoredEventError::Payload(e),
                    );
                }
            };
            #typed
            #private::std::result::Result::Ok(#private::Upcast::from(#events))
        }
    }
}
