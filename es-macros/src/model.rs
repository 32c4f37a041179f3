//! The aggregate as the macro understands it, pointing back at the syntax it came from.

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, LitStr, Pat, PathArguments,
    ReturnType, Type,
};

use crate::args::Args;
use crate::case;
use crate::ctxt::Ctxt;
use crate::handler_args::{CommandArgs, EventArgs, UpcastArgs, Version, handler_kind, is_upcast};
use crate::services::{self, Role};
use crate::symbol::*;
use crate::tokens::type_string;

/// An `impl` block under `#[aggregate]`.
pub(crate) struct Aggregate<'a> {
    pub(crate) original: &'a ItemImpl,
    pub(crate) args: Args,
    /// The state type's name (`BankAccount`); `None` when the self type is not a named type.
    pub(crate) ident: Option<Ident>,
    pub(crate) commands: Vec<Command<'a>>,
    pub(crate) events: Vec<Event<'a>>,
    pub(crate) upcasts: Vec<Upcast<'a>>,
}

/// An `#[upcast]` function: reads a past shape of a stored event as current events.
pub(crate) struct Upcast<'a> {
    pub(crate) original: &'a ImplItemFn,
    /// The stored type name of the past shape.
    pub(crate) from: Option<LitStr>,
    /// The version of the past shape.
    pub(crate) version: Option<Version>,
    /// Given when the type name belongs to no current event.
    pub(crate) retired: Option<Ident>,
    /// The old fields.
    pub(crate) params: Vec<Param<'a>>,
    /// How it returns its events; `None` when the return type is not one the macro supports.
    pub(crate) form: Option<Form>,
}

/// A `#[command]` method.
pub(crate) struct Command<'a> {
    pub(crate) original: &'a ImplItemFn,
    pub(crate) variant: Ident,
    pub(crate) params: Vec<Param<'a>>,
    /// What it returns; `None` when the return type is not one the macro supports.
    pub(crate) output: Option<Output<'a>>,
    /// The events it may emit, when given with `#[command(emits(...))]`.
    pub(crate) emits: Option<Vec<Ident>>,
    /// Where it takes the aggregate's services among its parameters, if it does (not a
    /// field: not in `params`).
    pub(crate) services: Option<ServicesParam<'a>>,
}

/// The parameter of a command that takes the aggregate's services.
pub(crate) struct ServicesParam<'a> {
    /// Its position among the method's parameters after `self`.
    pub(crate) index: usize,
    /// Its type as written (`&BankServices`), for spans.
    pub(crate) ty: &'a Type,
}

/// An `#[event]` method.
pub(crate) struct Event<'a> {
    pub(crate) original: &'a ImplItemFn,
    pub(crate) variant: Ident,
    pub(crate) params: Vec<Param<'a>>,
    /// The stored type name, when pinned with `#[event(name = "...")]`.
    pub(crate) name: Option<LitStr>,
    /// Other stored names this event decodes from.
    pub(crate) aliases: Vec<LitStr>,
    /// The version of its shape, when given with `#[event(version = N)]`.
    pub(crate) version: Option<Version>,
}

/// A parameter of a handler, which becomes a field of its variant.
pub(crate) struct Param<'a> {
    pub(crate) ident: Ident,
    /// The field's type: the parameter's, without a leading `&`.
    pub(crate) ty: FieldType,
    /// Whether the method takes it by reference (the field is lent, not moved).
    pub(crate) by_ref: bool,
    /// `#[serde(...)]` attributes, carried onto the field.
    pub(crate) serde: Vec<&'a Attribute>,
}

/// The type of a generated field.
pub(crate) enum FieldType {
    /// The parameter's type (after `&`), with `Self` replaced by the aggregate type.
    Plain(Type),
    /// `String`, for a `&str` parameter.
    String,
    /// `Vec<T>`, for a `&[T]` parameter.
    VecOf(Type),
}

/// How a command returns its events.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `Event`
    One,
    /// `Vec<Event>`
    Vec,
    /// `Option<Event>`
    Option,
    /// `[Event; N]`
    Array,
    /// `()`: the command only checks.
    Nothing,
}

/// The return type of a command.
pub(crate) struct Output<'a> {
    pub(crate) form: Form,
    /// The return type as written, for spans.
    pub(crate) ty: Option<&'a Type>,
    /// Whether it returns a `Result`.
    pub(crate) fallible: bool,
    /// The error type of the `Result`, when it names one.
    pub(crate) error: Option<&'a Type>,
}

impl<'a> Aggregate<'a> {
    /// Reads an `impl` block, recording in `cx` what cannot be understood.
    pub(crate) fn from_impl(cx: &Ctxt, args: Args, original: &'a ItemImpl) -> Self {
        let ident = self_ident(cx, original);
        let mut commands = Vec::new();
        let mut events = Vec::new();
        let mut upcasts = Vec::new();
        for item in &original.items {
            let ImplItem::Fn(method) = item else {
                for attr in item_attrs(item) {
                    if let Some(kind) = handler_kind(attr) {
                        cx.error_spanned_by(
                            attr,
                            format!("`#[{kind}]` goes on a method of the impl block"),
                        );
                    }
                }
                continue;
            };
            if let Some(attr) = method.attrs.iter().find(|a| is_upcast(a)) {
                if let Some(other) = method.attrs.iter().find(|a| handler_kind(a).is_some()) {
                    cx.error_spanned_by(
                        other,
                        "an `#[upcast]` function reads a past event; it is not also a handler",
                    );
                }
                let UpcastArgs {
                    from,
                    version,
                    retired,
                } = UpcastArgs::parse(cx, attr);
                upcasts.push(Upcast {
                    original: method,
                    from,
                    version,
                    retired,
                    params: params(
                        cx,
                        UPCAST,
                        method,
                        &original.self_ty,
                        args.services.as_ref(),
                    )
                    .0,
                    form: upcast_form(cx, method, ident.as_ref()),
                });
                continue;
            }
            let mut kinds = method.attrs.iter().filter(|a| handler_kind(a).is_some());
            let Some(attr) = kinds.next() else { continue };
            for extra in kinds {
                cx.error_spanned_by(
                    extra,
                    "a method is either one `#[command]` or one `#[event]`, not both",
                );
            }
            let kind = handler_kind(attr).unwrap_or(EVENT);
            let (params, services) =
                params(cx, kind, method, &original.self_ty, args.services.as_ref());
            let variant = format_ident!(
                "{}",
                case::upper_camel(&method.sig.ident.to_string()),
                span = method.sig.ident.span()
            );
            if handler_kind(attr) == Some(COMMAND) {
                let CommandArgs { emits } = CommandArgs::parse(cx, attr);
                let output = output(cx, method, ident.as_ref());
                commands.push(Command {
                    original: method,
                    variant,
                    params,
                    output,
                    emits,
                    services,
                });
            } else {
                let EventArgs {
                    name,
                    aliases,
                    version,
                } = EventArgs::parse(cx, attr);
                events.push(Event {
                    original: method,
                    variant,
                    params,
                    name,
                    aliases,
                    version,
                });
            }
        }
        Aggregate {
            original,
            args,
            ident,
            commands,
            events,
            upcasts,
        }
    }

    /// The name of the command enum (`BankAccountCommand`).
    pub(crate) fn command_enum(&self) -> Ident {
        let ident = self
            .ident
            .clone()
            .unwrap_or_else(|| format_ident!("Aggregate"));
        format_ident!("{}Command", ident)
    }

    /// The name of the event enum (`BankAccountEvent`).
    pub(crate) fn event_enum(&self) -> Ident {
        let ident = self
            .ident
            .clone()
            .unwrap_or_else(|| format_ident!("Aggregate"));
        format_ident!("{}Event", ident)
    }

    /// The path through which generated code names the runtime: `::es::__private`.
    pub(crate) fn private(&self) -> TokenStream {
        match &self.args.krate {
            Some(path) => quote!(#path::__private),
            None => quote!(::es::__private),
        }
    }

    /// The error type of the fallible commands: the option, or the first one's.
    pub(crate) fn error_type(&self) -> Option<&Type> {
        self.args.error.as_ref().or_else(|| {
            self.commands
                .iter()
                .filter_map(|c| c.output.as_ref())
                .find_map(|o| o.error)
        })
    }

    /// The stream category.
    pub(crate) fn stream_category(&self) -> String {
        match (&self.args.name, &self.ident) {
            (Some(name), _) => name.value(),
            (None, Some(ident)) => case::snake(&ident.to_string()),
            (None, None) => String::new(),
        }
    }

    /// The event variants `command` may emit: as given with `emits(...)`, or else every
    /// `<Type>Event::Variant` path in its body, in order of first appearance.
    pub(crate) fn emits(&self, command: &Command<'_>) -> Vec<Ident> {
        if let Some(given) = &command.emits {
            return given.clone();
        }
        let event_enum = self.event_enum();
        let mut found: Vec<Ident> = Vec::new();
        scan_paths(
            quote::ToTokens::to_token_stream(&command.original.block),
            &event_enum,
            &mut |variant| {
                if !found.contains(variant) && self.events.iter().any(|e| e.variant == *variant) {
                    found.push(variant.clone());
                }
            },
        );
        found
    }
}

impl Event<'_> {
    /// The stored type name: pinned, or the variant name.
    pub(crate) fn stored_name(&self) -> String {
        self.name
            .as_ref()
            .map_or_else(|| self.variant.to_string(), LitStr::value)
    }

    /// The version of its shape (1 unless given).
    pub(crate) fn version(&self) -> u32 {
        self.version.as_ref().and_then(|v| v.value).unwrap_or(1)
    }
}

impl Upcast<'_> {
    /// The stored type name it reads, as a string (empty when missing).
    pub(crate) fn source_name(&self) -> String {
        self.from.as_ref().map(LitStr::value).unwrap_or_default()
    }

    /// The version it reads (0 when missing or invalid).
    pub(crate) fn version(&self) -> u32 {
        self.version.as_ref().and_then(|v| v.value).unwrap_or(0)
    }
}

/// How an upcast returns its events: one, `Vec` or `Option` of the event enum.
fn upcast_form(cx: &Ctxt, method: &ImplItemFn, ident: Option<&Ident>) -> Option<Form> {
    let event = ident.map_or_else(|| "<Type>Event".to_owned(), |i| format!("{i}Event"));
    let expected = format!(
        "`#[upcast]` functions return the current events: `{event}`, `Vec<{event}>` (one old event became several) or `Option<{event}>` (`None` drops it)"
    );
    let ty = match &method.sig.output {
        ReturnType::Default => {
            cx.error_spanned_by(
                &method.sig.ident,
                format!("{expected}; this one returns nothing"),
            );
            return None;
        }
        ReturnType::Type(_, ty) => &**ty,
    };
    match form(ty, ident) {
        Some(form @ (Form::One | Form::Vec | Form::Option)) => Some(form),
        _ => {
            cx.error_spanned_by(
                ty,
                format!("{expected}; `{}` is none of these", type_string(ty)),
            );
            None
        }
    }
}

fn item_attrs(item: &ImplItem) -> &[Attribute] {
    match item {
        ImplItem::Const(c) => &c.attrs,
        ImplItem::Type(t) => &t.attrs,
        ImplItem::Macro(m) => &m.attrs,
        _ => &[],
    }
}

fn self_ident(cx: &Ctxt, original: &ItemImpl) -> Option<Ident> {
    let self_ty = &*original.self_ty;
    if let Type::Path(path) = self_ty
        && path.qself.is_none()
        && let Some(last) = path.path.segments.last()
    {
        // Generic arguments of an impl with generic parameters are reported with the
        // parameters.
        if matches!(last.arguments, PathArguments::None) || !original.generics.params.is_empty() {
            return Some(last.ident.clone());
        }
        cx.error_spanned_by(
            &last.arguments,
            "`#[aggregate]` does not support generic types: the aggregate must be a \
                     plain type name, like `impl BankAccount`",
        );
        // Still named, so the placeholder enums exist for the code that uses them.
        return Some(last.ident.clone());
    }
    cx.error_spanned_by(
        self_ty,
        "`#[aggregate]` goes on the impl block of a named type, like `impl BankAccount`",
    );
    None
}

/// The fields a handler's parameters become, and where a command takes the services.
fn params<'a>(
    cx: &Ctxt,
    kind: &str,
    method: &'a ImplItemFn,
    self_ty: &Type,
    services: Option<&Type>,
) -> (Vec<Param<'a>>, Option<ServicesParam<'a>>) {
    let mut params = Vec::new();
    let mut taken: Option<ServicesParam<'a>> = None;
    let typed = method.sig.inputs.iter().filter_map(|arg| match arg {
        FnArg::Typed(pat_type) => Some(pat_type),
        FnArg::Receiver(_) => None,
    });
    for (index, pat_type) in typed.enumerate() {
        match services::role(cx, kind, pat_type, services) {
            Role::Field => {}
            Role::Reported => continue,
            Role::Services => {
                if taken.is_some() {
                    services::report_second(cx, &method.sig.ident, pat_type);
                } else {
                    taken = Some(ServicesParam {
                        index,
                        ty: &pat_type.ty,
                    });
                }
                continue;
            }
        }
        let ident = match &*pat_type.pat {
            Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => Some(p.ident.clone()),
            _ => None,
        };
        let Some(ident) = ident else {
            cx.error_spanned_by(
                &pat_type.pat,
                "parameters of `#[command]` and `#[event]` methods become named fields, so \
                 each needs a plain name, like `amount: u64`; this is a pattern",
            );
            continue;
        };
        let Some((ty, by_ref)) = field_type(cx, &pat_type.ty, self_ty) else {
            continue;
        };
        let serde = pat_type
            .attrs
            .iter()
            .filter(|a| a.path().is_ident(SERDE))
            .collect();
        params.push(Param {
            ident,
            ty,
            by_ref,
            serde,
        });
    }
    (params, taken)
}

/// The field type of a parameter type: `T` for `T`; `T` (lent to the method) for `&T`, with
/// `&str` stored as `String` and `&[T]` as `Vec<T>`.
fn field_type(cx: &Ctxt, ty: &Type, self_ty: &Type) -> Option<(FieldType, bool)> {
    let (field, by_ref) = match ty {
        Type::Reference(r) if r.mutability.is_some() => {
            cx.error_spanned_by(
                ty,
                "parameters are fields of a command or event, taken by value or by `&`; \
                 `&mut` has nothing to change",
            );
            // Kept as a field so the rest of the code is still checked against it.
            (&*r.elem, true)
        }
        Type::Reference(r) if r.lifetime.is_some() => {
            cx.error_spanned_by(
                ty,
                "a parameter taken by `&` is lent from the command or event for the call; \
                 write it without a lifetime (`&T`) or take it by value",
            );
            (&*r.elem, true)
        }
        Type::Reference(r) => (&*r.elem, true),
        Type::ImplTrait(_) => {
            cx.error_spanned_by(
                ty,
                "parameters become fields of a generated enum and need a concrete type; \
                 `impl Trait` cannot be stored",
            );
            return None;
        }
        other => (other, false),
    };
    let mut field = match field {
        Type::Path(p) if by_ref && p.qself.is_none() && p.path.is_ident("str") => {
            return Some((FieldType::String, true));
        }
        Type::Slice(s) if by_ref => FieldType::VecOf((*s.elem).clone()),
        other => FieldType::Plain(other.clone()),
    };
    let (FieldType::Plain(inner) | FieldType::VecOf(inner)) = &mut field else {
        unreachable!("strings returned above")
    };
    let mut borrowed = FindBorrow(None);
    borrowed.visit_type(inner);
    if let Some(at) = borrowed.0 {
        cx.error_at(
            at,
            "parameters become fields of a generated enum, which owns its data: use an owned \
             type here (`String`, `Vec<T>`, ...) or a `'static` one",
        );
        return None;
    }
    ReplaceSelf(self_ty).visit_type_mut(inner);
    Some((field, by_ref))
}

/// Finds a borrow that a field could not hold: a reference or lifetime other than `'static`.
struct FindBorrow(Option<proc_macro2::Span>);

impl<'ast> Visit<'ast> for FindBorrow {
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        match &r.lifetime {
            Some(l) if l.ident == "static" => syn::visit::visit_type_reference(self, r),
            _ => {
                self.0.get_or_insert(r.and_token.span());
            }
        }
    }

    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident != "static" {
            self.0.get_or_insert(l.span());
        }
    }
}

/// `Self` in a field type means the aggregate, not the enum the field ends up in.
pub(crate) struct ReplaceSelf<'a>(pub(crate) &'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty
            && p.qself.is_none()
            && p.path.is_ident("Self")
        {
            *ty = self.0.clone();
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

fn output<'a>(cx: &Ctxt, method: &'a ImplItemFn, ident: Option<&Ident>) -> Option<Output<'a>> {
    let ty = match &method.sig.output {
        ReturnType::Default => {
            return Some(Output {
                form: Form::Nothing,
                ty: None,
                fallible: false,
                error: None,
            });
        }
        ReturnType::Type(_, ty) => &**ty,
    };
    let (events, fallible, error) = match result_args(ty) {
        Some(args) if args.len() == 2 => (args[0], true, Some(args[1])),
        Some(args) if args.len() == 1 => (args[0], true, None),
        _ => (ty, false, None),
    };
    let form = match form(events, ident) {
        Some(form) => form,
        None => {
            let event = ident.map_or_else(|| "<Type>Event".to_owned(), |i| format!("{i}Event"));
            cx.error_spanned_by(
                events,
                format!(
                    "`#[command]` methods return their events as `{event}`, `Vec<{event}>`, \
                     `Option<{event}>`, `[{event}; N]` or `()`, either bare or in \
                     `Result<_, E>`; `{}` is none of these",
                    type_string(events)
                ),
            );
            return None;
        }
    };
    Some(Output {
        form,
        ty: Some(ty),
        fallible,
        error,
    })
}

/// Type names that are certainly not the event enum when they stand alone as a return type.
const NOT_EVENTS: &[&str] = &[
    "bool",
    "char",
    "str",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "usize",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "isize",
    "f32",
    "f64",
    "String",
    "OsString",
    "CString",
    "PathBuf",
    "Duration",
    "Instant",
    "SystemTime",
];

/// How a command's return type (inside its `Result`, if any) holds events; `None` when it is
/// certainly not one of the forms. A type that may name the event enum (an alias, a path the
/// macro cannot resolve) is taken as one event, and rustc checks it.
fn form(ty: &Type, ident: Option<&Ident>) -> Option<Form> {
    match ty {
        Type::Paren(p) => form(&p.elem, ident),
        Type::Group(g) => form(&g.elem, ident),
        Type::Tuple(t) if t.elems.is_empty() => Some(Form::Nothing),
        Type::Array(_) => Some(Form::Array),
        Type::Macro(_) | Type::Verbatim(_) => Some(Form::One),
        Type::Path(p) if p.qself.is_some() => Some(Form::One),
        Type::Path(p) => {
            let last = p.path.segments.last()?;
            let event_enum = ident.map(|i| format_ident!("{i}Event"));
            if event_enum.is_some_and(|e| last.ident == e) {
                // Even with arguments: those are a mistake of their own, reported by rustc.
                Some(Form::One)
            } else if generic_args(ty, "Vec").is_some_and(|a| a.len() == 1) {
                Some(Form::Vec)
            } else if generic_args(ty, "Option").is_some_and(|a| a.len() == 1) {
                Some(Form::Option)
            } else if !matches!(last.arguments, PathArguments::None) {
                // Generic, and neither `Vec` nor `Option`: `VecDeque<Event>`, `Box<Event>`,
                // a nested `Result`.
                None
            } else if p.path.is_ident("Self")
                || NOT_EVENTS.iter().any(|n| last.ident == n)
                || ident.is_some_and(|i| {
                    last.ident == *i || last.ident == format!("{i}Command").as_str()
                })
            {
                None
            } else {
                Some(Form::One)
            }
        }
        _ => None,
    }
}

/// The type arguments of `ty` if it is a `Result<T, E>`, or a `Result` alias such as
/// `io::Result<T>` or `CartResult<T>`.
fn result_args(ty: &Type) -> Option<Vec<&Type>> {
    let Type::Path(p) = ty else { return None };
    let name = p.path.segments.last()?.ident.to_string();
    if !name.ends_with("Result") {
        return None;
    }
    generic_args(ty, &name).filter(|args| matches!(args.len(), 1 | 2))
}

/// The type arguments of `ty` if it is a path ending in `name<...>`.
fn generic_args<'t>(ty: &'t Type, name: &str) -> Option<Vec<&'t Type>> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
    )
}

/// Calls `found` with `V` for every `Enum::V` (or `...::Enum::V`) in `tokens`, macro bodies
/// included.
pub(crate) fn scan_paths(tokens: TokenStream, event_enum: &Ident, found: &mut impl FnMut(&Ident)) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tt) in tokens.iter().enumerate() {
        match tt {
            TokenTree::Group(g) => scan_paths(g.stream(), event_enum, found),
            TokenTree::Ident(id) if id == event_enum => {
                if let [
                    TokenTree::Punct(a),
                    TokenTree::Punct(b),
                    TokenTree::Ident(v),
                    ..,
                ] = &tokens[i + 1..]
                    && a.as_char() == ':'
                    && b.as_char() == ':'
                {
                    found(v);
                }
            }
            _ => {}
        }
    }
}
