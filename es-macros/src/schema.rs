//! The schema of the aggregate, a static that `Aggregate::schema` returns: its commands,
//! events (with their versions), upcasts, fields and stored names, as the model has them.

use proc_macro2::TokenStream;
use quote::quote;

use crate::docs;
use crate::model::{self, Aggregate, Form, Param, Upcast};
use crate::tokens;

/// The body of `Aggregate::schema`: a static built from the model.
pub(crate) fn expand(agg: &Aggregate<'_>) -> TokenStream {
    let private = agg.private();
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
        let version = e.version();
        quote!(
            #private::EventSchema::new(#name, #stored, &[#(#aliases),*], #method, #doc, #fields)
                .with_version(#version)
        )
    });
    let upcasts = agg.upcasts.iter().map(|u| {
        let from = u.source_name();
        let version = u.version();
        let method = u.original.sig.ident.to_string();
        let doc = docs::doc_text(&u.original.attrs);
        let fields = field_list(&u.params);
        let returns = match u.form {
            Some(Form::Vec) => quote!(Several),
            Some(Form::Option) => quote!(OneOrNone),
            _ => quote!(One),
        };
        let retired = u.retired.is_some();
        let into = upcast_targets(agg, u);
        quote!(#private::UpcastSchema::new(
            #from, #version, #method, #doc, #fields, #private::UpcastReturns::#returns, #retired,
            &[#(#into),*],
        ))
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
        )
        .with_upcasts(&[#(#upcasts),*]);
        &SCHEMA
    }
}

/// The variants of the current events an upcast may read as: every `<Type>Event::Variant` its
/// body names, or else (when it builds them elsewhere, through another upcast say) the current
/// event stored under the name it reads.
fn upcast_targets(agg: &Aggregate<'_>, u: &Upcast<'_>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    model::scan_paths(
        quote::ToTokens::to_token_stream(&u.original.block),
        &agg.event_enum(),
        &mut |variant| {
            let variant = variant.to_string();
            if !found.contains(&variant) && agg.events.iter().any(|e| e.variant == variant) {
                found.push(variant);
            }
        },
    );
    if found.is_empty() {
        let from = u.source_name();
        found.extend(
            agg.events
                .iter()
                .filter(|e| e.stored_name() == from)
                .map(|e| e.variant.to_string()),
        );
    }
    found
}
