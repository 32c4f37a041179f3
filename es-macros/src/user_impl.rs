//! The user's impl block, emitted whether the aggregate is valid or not.

use syn::{ImplItem, ItemImpl};

use crate::handler_args::{handler_kind, is_upcast};
use crate::symbol::SERDE;

/// The impl block as written, less the attributes that only the macro understands.
pub(crate) fn expand(original: &ItemImpl) -> ItemImpl {
    let mut item = original.clone();
    for it in &mut item.items {
        let ImplItem::Fn(method) = it else { continue };
        if method.attrs.iter().any(is_upcast) {
            method
                .attrs
                .retain(|a| !is_upcast(a) && handler_kind(a).is_none());
            strip_serde(method);
            continue;
        }
        if !method.attrs.iter().any(|a| handler_kind(a).is_some()) {
            continue;
        }
        method.attrs.retain(|a| handler_kind(a).is_none());
        // The macro requires the receiver, so a handler that does not read the state still
        // takes it.
        method
            .attrs
            .push(syn::parse_quote!(#[allow(clippy::unused_self)]));
        strip_serde(method);
    }
    item
}

/// The `#[serde(...)]` of parameters, which belong to the generated fields.
fn strip_serde(method: &mut syn::ImplItemFn) {
    for arg in &mut method.sig.inputs {
        if let syn::FnArg::Typed(pat_type) = arg {
            pat_type.attrs.retain(|a| !a.path().is_ident(SERDE));
        }
    }
}
