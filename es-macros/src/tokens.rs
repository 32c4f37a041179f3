//! Tokens read as text: a type as a reader would write it, the identifiers tokens name.
//!
//! A leaf: it knows syntax only, not the model, so every other module may use it.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::Type;

/// A type as a reader would write it: `Vec<String>`, not `Vec < String >`.
pub(crate) fn type_string(ty: &Type) -> String {
    tidy(&ty.to_token_stream().to_string())
}

/// Tidies the spacing of printed tokens.
pub(crate) fn tidy(printed: &str) -> String {
    let mut s = printed.to_owned();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        (" ;", ";"),
        ("& ", "&"),
        ("[ ", "["),
        (" ]", "]"),
        ("( ", "("),
        (" )", ")"),
        ("' ", "'"),
    ] {
        s = s.replace(from, to);
    }
    // `Fn (u8)` → `Fn(u8)`, leaving `, (u8, u8)` and `-> (u8, u8)` alone.
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let call = c == ' '
            && chars.get(i + 1) == Some(&'(')
            && i > 0
            && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if !call {
            out.push(c);
        }
    }
    out
}

/// Every identifier in `tokens`, as strings, appended to `out`.
pub(crate) fn idents(tokens: TokenStream, out: &mut Vec<String>) {
    for tt in tokens {
        match tt {
            TokenTree::Ident(ident) => out.push(ident.to_string()),
            TokenTree::Group(g) => idents(g.stream(), out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_print_as_written() {
        let ty: Type = syn::parse_quote!(std::collections::BTreeMap<String, Vec<(u8, [u16; 4])>>);
        assert_eq!(
            type_string(&ty),
            "std::collections::BTreeMap<String, Vec<(u8, [u16; 4])>>"
        );
        let ty: Type = syn::parse_quote!(&'static str);
        assert_eq!(type_string(&ty), "&'static str");
        let ty: Type = syn::parse_quote!(Option<Box<dyn Fn(u8) -> u8 + Send>>);
        assert_eq!(type_string(&ty), "Option<Box<dyn Fn(u8) -> u8 + Send>>");
    }
}
