//! The `#[aggregate]` attribute macro of `es`.
#![doc = include_str!("../README.md")]

mod args;
mod case;
mod ctxt;
mod docs;
mod expand;
mod fallback;
mod handler_args;
mod model;
mod symbol;
mod tokens;
mod validate;

use proc_macro::TokenStream;

#[doc = include_str!("../aggregate.md")]
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::aggregate(args.into(), input.into()).into()
}
