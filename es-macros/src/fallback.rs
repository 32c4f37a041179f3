//! What is emitted when the aggregate has mistakes: the errors, the user's impl block and
//! placeholder enums, so the compiler reports the real mistakes and not their consequences.

use proc_macro2::TokenStream;
use quote::quote;

use crate::enums::{self, Mode};
use crate::model::Aggregate;
use crate::user_impl;

pub(crate) fn expand(agg: &Aggregate<'_>, errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let user_impl = user_impl::expand(agg.original);
    // Without the `Aggregate` impl nothing calls the handlers; their being unused is not news.
    let enums = agg
        .ident
        .is_some()
        .then(|| enums::expand(agg, Mode::Placeholder));
    quote! {
        #errors
        #[allow(dead_code)]
        #user_impl
        #enums
    }
}
