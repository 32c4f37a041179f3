//! The `#[aggregate]` attribute macro of `es`.

use proc_macro::TokenStream;

/// Generates the command and event enums and the `Aggregate` implementation for an `impl`
/// block.
#[proc_macro_attribute]
pub fn aggregate(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
