//! Where generated tokens are reported: rustc puts an error in generated code on the span of
//! the token it concerns, so the tokens that may fail are given the span of the user's syntax
//! they stand for.

use proc_macro2::{Group, Span, TokenStream, TokenTree};

/// `tokens`, reported at `span` but resolved as they were (so hygiene is unchanged).
pub(crate) fn located_at(tokens: TokenStream, span: Span) -> TokenStream {
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

/// The span of the last token of `tokens` (a group's closing delimiter), or the call site.
pub(crate) fn last(tokens: &TokenStream) -> Span {
    match tokens.clone().into_iter().last() {
        Some(TokenTree::Group(g)) => g.span_close(),
        Some(tt) => tt.span(),
        None => Span::call_site(),
    }
}

/// `tokens`, each at `span`.
pub(crate) fn respanned(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            tt.set_span(span);
            tt
        })
        .collect()
}
