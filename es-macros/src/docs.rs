//! Text for the generated documentation and schema.

use quote::ToTokens;
use syn::{Attribute, Expr, Lit, Meta};

use crate::model::{Aggregate, Command, Event, FieldType, Param};
use crate::symbol::DOC;
use crate::tokens::{tidy, type_string};

/// The field type of a parameter, as shown in docs and the schema.
pub(crate) fn field_type_string(param: &Param<'_>) -> String {
    match &param.ty {
        FieldType::Plain(ty) => type_string(ty),
        FieldType::String => "String".to_owned(),
        FieldType::VecOf(ty) => format!("Vec<{}>", type_string(ty)),
    }
}

/// The `///` comments among `attrs`, as text with the conventional leading space removed.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident(DOC)) {
        if let Meta::NameValue(nv) = &attr.meta
            && let Expr::Lit(lit) = &nv.value
            && let Lit::Str(s) = &lit.lit
        {
            let value = s.value();
            for line in value.lines() {
                lines.push(line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned());
            }
        }
    }
    lines.join("\n").trim().to_owned()
}

/// The lines appended to a command variant's docs.
pub(crate) fn command_notes(agg: &Aggregate<'_>, command: &Command<'_>) -> Vec<String> {
    let ty = ty_name(agg);
    let event_enum = agg.event_enum();
    let method = &command.original.sig.ident;
    let mut notes = Vec::new();
    if doc_text(&command.original.attrs).is_empty() {
        notes.push(format!("The `{method}` command of {}.", ty_link(agg)));
        notes.push(String::new());
    }
    let emits = agg.emits(command);
    let emits = if emits.is_empty() {
        "Emits no events.".to_owned()
    } else {
        format!(
            "May emit {}.",
            emits
                .iter()
                .map(|v| format!("[`{event_enum}::{v}`]"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    notes.push(format!("Handled by `{ty}::{method}`. {emits}"));
    if let Some(output) = &command.output
        && output.fallible
        && let Some(error) = agg.error_type()
    {
        notes.push(String::new());
        notes.push(format!("Can be refused with `{}`.", type_string(error)));
    }
    notes
}

/// The lines appended to an event variant's docs.
pub(crate) fn event_notes(agg: &Aggregate<'_>, event: &Event<'_>) -> Vec<String> {
    let ty = ty_name(agg);
    let command_enum = agg.command_enum();
    let method = &event.original.sig.ident;
    let mut notes = Vec::new();
    if doc_text(&event.original.attrs).is_empty() {
        notes.push(format!("The `{method}` event of {}.", ty_link(agg)));
        notes.push(String::new());
    }
    let mut stored = format!("Stored as `{}`", event.stored_name());
    if !event.aliases.is_empty() {
        stored.push_str(&format!(
            " (also read from {})",
            event
                .aliases
                .iter()
                .map(|a| format!("`{}`", a.value()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    notes.push(format!("{stored}; applied by `{ty}::{method}`."));
    let emitted_by: Vec<String> = agg
        .commands
        .iter()
        .filter(|c| agg.emits(c).contains(&event.variant))
        .map(|c| format!("[`{command_enum}::{}`]", c.variant))
        .collect();
    if !emitted_by.is_empty() {
        notes.push(String::new());
        notes.push(format!("Emitted by {}.", emitted_by.join(", ")));
    }
    notes
}

/// The doc of one field (rustdoc shows its name and type beside it).
pub(crate) fn field_doc(agg: &Aggregate<'_>, method: &syn::Ident, param: &Param<'_>) -> String {
    format!(
        "The `{}` argument of `{}::{method}`.",
        param.ident,
        ty_name(agg)
    )
}

/// The doc of the command enum.
pub(crate) fn command_enum_doc(agg: &Aggregate<'_>) -> Vec<String> {
    let krate = krate_doc(agg);
    vec![
        format!(
            "Commands handled by {}, one variant per `#[command]` method.",
            ty_link(agg)
        ),
        String::new(),
        format!(
            "Handle one with [`Aggregate::handle`]({krate}::Aggregate::handle): it calls the \
             method of the same name and returns the events to store."
        ),
    ]
}

/// The doc of the event enum.
pub(crate) fn event_enum_doc(agg: &Aggregate<'_>) -> Vec<String> {
    let krate = krate_doc(agg);
    vec![
        format!(
            "Events of {}, one variant per `#[event]` method.",
            ty_link(agg)
        ),
        String::new(),
        format!(
            "Each is stored under its type name ([`DomainEvent::event_type`]({krate}::DomainEvent::event_type)) \
             in streams of the `{category}` category ([`DomainEvent::CATEGORIES`]({krate}::DomainEvent::CATEGORIES)), \
             and applied by its method through [`Aggregate::apply`]({krate}::Aggregate::apply).",
            category = agg.stream_category()
        ),
    ]
}

/// An intra-doc link to the aggregate type, through its path as written in the impl.
fn ty_link(agg: &Aggregate<'_>) -> String {
    let name = ty_name(agg);
    let path = type_string(&agg.original.self_ty);
    if path == name {
        format!("[`{name}`]")
    } else {
        format!("[`{name}`]({path})")
    }
}

fn ty_name(agg: &Aggregate<'_>) -> String {
    agg.ident
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn krate_doc(agg: &Aggregate<'_>) -> String {
    agg.args.krate.as_ref().map_or_else(
        || "es".to_owned(),
        |p| {
            tidy(&p.to_token_stream().to_string())
                .trim_start_matches("::")
                .to_owned()
        },
    )
}
