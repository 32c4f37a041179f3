//! What is emitted when the aggregate has mistakes: the errors, the user's impl block and
//! placeholder enums, so the compiler reports the real mistakes and not their consequences.

use proc_macro2::TokenStream;
use quote::quote;

use crate::expand;
use crate::model::Aggregate;

pub(crate) fn expand(agg: &Aggregate<'_>, errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let user_impl = expand::stripped(agg.original);
    // Without the `Aggregate` impl nothing calls the handlers; their being unused is not news.
    let enums = agg.ident.is_some().then(|| {
        let commands = expand::command_enum(agg, false);
        let events = expand::event_enum(agg, false);
        quote!(#commands #events)
    });
    quote! {
        #errors
        #[allow(dead_code)]
        #user_impl
        #enums
    }
}
