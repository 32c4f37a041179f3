//! The services a command consults: which parameter takes them, and the mistakes of
//! parameters that look like a service but cannot be a field (`&dyn Clock`, `impl Lookup`),
//! each reported with the way that works.
//!
//! A parameter takes the services when its type is `&T`, `T` being the type named by
//! `#[aggregate(services = T)]` (compared by its last path segment; rustc checks the rest
//! where the generated code passes the services). It is not a field: the command enum, the
//! schema and the docs do not see it.

use syn::visit::Visit;
use syn::{Ident, PatType, Type};

use crate::ctxt::Ctxt;
use crate::symbol::{COMMAND, EVENT, UPCAST};

/// What a parameter of a handler is, as far as services go.
pub(crate) enum Role {
    /// A field of the variant.
    Field,
    /// The command's services, taken by `&`.
    Services,
    /// A mistake, reported.
    Reported,
}

/// Classifies one parameter of a `kind` handler (`#[command]`, `#[event]`, `#[upcast]`),
/// reporting the mistakes.
pub(crate) fn role(cx: &Ctxt, kind: &str, arg: &PatType, declared: Option<&Type>) -> Role {
    let ty = &*arg.ty;
    let declared_name = declared.and_then(last_ident);
    let (inner, reference, mutable) = match ty {
        Type::Reference(r) => (&*r.elem, true, r.mutability.is_some()),
        other => (other, false, false),
    };
    let names_declared = declared_name.is_some() && last_ident(inner) == declared_name;
    let looks_like_services =
        last_ident(inner).is_some_and(|i| i.to_string().ends_with("Services"));
    let declared_str = declared.map(crate::tokens::type_string);
    if kind != COMMAND {
        if names_declared || (reference && looks_like_services) {
            cx.error_spanned_by(
                ty,
                format!(
                    "{} cannot consult services: {}; a command consults them and records \
                     what it learned in the event's fields",
                    handler(kind),
                    if kind == UPCAST {
                        "reading a stored event depends on its payload alone"
                    } else {
                        "applying an event depends on the event alone, so replaying it gives \
                         the same state"
                    },
                ),
            );
            return Role::Reported;
        }
        if let Some(dyn_at) = find_dyn(ty) {
            cx.error_spanned_by(
                dyn_at,
                "event fields are stored as data and a trait object cannot be stored; a \
                 command consults services (`#[aggregate(services = ...)]`) and records what \
                 it learned in the event's fields",
            );
            return Role::Reported;
        }
        return Role::Field;
    }
    if names_declared {
        let declared_str = declared_str.unwrap_or_default();
        if !reference {
            cx.error_spanned_by(
                ty,
                format!(
                    "a command borrows the services, which the host keeps for every command: \
                     take them by `&`, like `services: &{declared_str}`"
                ),
            );
            return Role::Reported;
        }
        if mutable {
            cx.error_spanned_by(
                ty,
                format!(
                    "the services are shared by every command the host runs at once: take \
                     them by `&`, like `services: &{declared_str}` (a service that changes \
                     holds its own lock)"
                ),
            );
            return Role::Reported;
        }
        return Role::Services;
    }
    let way = match &declared_str {
        Some(declared) => format!(
            "put it in `{declared}`, this aggregate's services, and take `services: &{declared}`"
        ),
        None => "declare `#[aggregate(services = YourServices)]`, a type holding it, and take \
                 `services: &YourServices`"
            .to_owned(),
    };
    if reference && looks_like_services {
        let name = crate::tokens::type_string(inner);
        let message = match &declared_str {
            Some(declared) => format!(
                "this aggregate's services are `{declared}` (`#[aggregate(services = \
                 {declared})]`); a command takes them as `&{declared}`, not `&{name}`"
            ),
            None => format!(
                "command fields are stored as data; to consult `{name}`, declare \
                 `#[aggregate(services = {name})]` and take `&{name}`"
            ),
        };
        cx.error_spanned_by(ty, message);
        return Role::Reported;
    }
    if let Some(dyn_at) = find_dyn(ty) {
        cx.error_spanned_by(
            dyn_at,
            format!(
                "command fields are stored as data and a trait object cannot be stored; to \
                 consult a clock or a lookup, {way}"
            ),
        );
        return Role::Reported;
    }
    if let Type::ImplTrait(_) = ty {
        cx.error_spanned_by(
            ty,
            format!(
                "command fields are stored as data and need a concrete type; to consult a \
                 clock or a lookup, {way}"
            ),
        );
        return Role::Reported;
    }
    Role::Field
}

/// Reports a second services parameter of one command.
pub(crate) fn report_second(cx: &Ctxt, method: &Ident, arg: &PatType) {
    cx.error_spanned_by(
        arg,
        format!("`{method}` takes the services twice: a command takes them once, by `&`"),
    );
}

fn handler(kind: &str) -> String {
    match kind {
        EVENT => "`#[event]` methods".to_owned(),
        _ => format!("`#[{kind}]` functions"),
    }
}

/// The last segment of a plain path type.
fn last_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        Type::Paren(p) => last_ident(&p.elem),
        Type::Group(g) => last_ident(&g.elem),
        _ => None,
    }
}

/// The first trait object in `ty` (`dyn Clock`, in `&dyn Clock` or `Box<dyn Clock>`).
fn find_dyn(ty: &Type) -> Option<&syn::TypeTraitObject> {
    struct Find<'t>(Option<&'t syn::TypeTraitObject>);
    impl<'t> Visit<'t> for Find<'t> {
        fn visit_type_trait_object(&mut self, t: &'t syn::TypeTraitObject) {
            self.0.get_or_insert(t);
        }
    }
    let mut find = Find(None);
    find.visit_type(ty);
    find.0
}
