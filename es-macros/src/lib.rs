//! The `#[aggregate]` attribute macro of `es`.
#![doc = include_str!("../README.md")]

mod args;
mod case;
mod checks;
mod ctxt;
mod docs;
mod enums;
mod expand;
mod fallback;
mod handler_args;
mod impls;
mod model;
mod schema;
mod services;
mod spans;
mod symbol;
mod tokens;
mod upcasts;
mod user_impl;
mod validate;
mod versions;

use proc_macro::TokenStream;

#[doc = include_str!("../aggregate.md")]
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::aggregate(args.into(), input.into()).into()
}
