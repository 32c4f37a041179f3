//! The pipeline: parse the arguments, read the impl block into a model, check it, expand
//! it, or on any mistake emit the fallback.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemImpl;

use crate::args::Args;
use crate::ctxt::Ctxt;
use crate::enums::{self, Mode};
use crate::model::Aggregate;
use crate::{checks, fallback, impls, user_impl, validate};

/// `#[aggregate]`: parse the arguments, read the impl block into a model, check it, expand.
pub(crate) fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &input,
                "`#[aggregate]` goes on an impl block with `#[command]` and `#[event]` \
                 methods, like `impl BankAccount { ... }`",
            )
            .into_compile_error();
            return quote!(#error #input);
        }
    };
    let cx = Ctxt::new();
    let args = Args::parse(&cx, args);
    let agg = Aggregate::from_impl(&cx, args, &item);
    validate::check(&cx, &agg);
    match cx.check() {
        Ok(()) => expand(&agg),
        Err(errors) => fallback::expand(&agg, &errors),
    }
}

/// The code for a valid aggregate: the user's impl, the type checks (ahead of the code whose
/// errors they word better), the enums and the trait impls.
fn expand(agg: &Aggregate<'_>) -> TokenStream {
    let user_impl = user_impl::expand(agg.original);
    let checks = checks::expand(agg);
    let enums = enums::expand(agg, Mode::Full);
    let domain_event = impls::domain_event(agg);
    let aggregate = impls::aggregate(agg);
    quote! {
        #user_impl
        #checks
        #enums
        #domain_event
        #aggregate
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    /// The `where` clause of the checks emitted for an impl block, and whether they come
    /// before the enums.
    fn checks(input: TokenStream) -> (String, bool) {
        let out = super::aggregate(TokenStream::new(), input).to_string();
        let at = out.find("struct __Checks").expect("the checks are emitted");
        let clause = &out[at..];
        let clause = clause[..clause.find(';').unwrap()].to_owned();
        (clause, at < out.find("enum ").unwrap())
    }

    #[test]
    fn field_and_error_types_are_asserted_before_the_enums() {
        let (clause, first) = checks(quote! {
            impl Cart {
                #[command]
                fn add(
                    &self,
                    items: Vec<Item>,
                    note: &str,
                    #[serde(with = "opaque")] tag: Opaque,
                    #[serde(default)] count: Count,
                ) -> Result<CartEvent, CartError> {
                    todo!()
                }

                #[event]
                fn added(&mut self, item: (Item, Self)) {}
            }
        });
        assert!(first);
        assert!(clause.contains("CartError : __AggregateError"), "{clause}");
        // Elements of collections and tuples are asserted themselves, each type once.
        assert_eq!(clause.matches("Item : __EventField").count(), 1, "{clause}");
        assert!(!clause.contains("Vec"), "{clause}");
        assert!(clause.contains("Cart : __EventField"), "{clause}");
        // A type only commands use is asserted as a command field, whose message names services.
        assert!(clause.contains("Count : __CommandField"), "{clause}");
        assert!(!clause.contains("Item : __CommandField"), "{clause}");
        // A field serialized `with` a module need not implement the serde traits.
        assert!(!clause.contains("Opaque"), "{clause}");
    }

    #[test]
    fn the_services_parameter_is_no_field() {
        let args = quote!(services = Shop);
        let out = super::aggregate(
            args,
            quote! {
                impl Cart {
                    #[command]
                    fn add(&self, services: &Shop, item: Item) -> CartEvent {
                        todo!()
                    }

                    #[event]
                    fn added(&mut self, item: Item) {}
                }
            },
        )
        .to_string();
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("Shop : __Services"), "{out}");
        assert!(!out.contains("Shop : __EventField"), "{out}");
        assert!(!out.contains("Shop : __CommandField"), "{out}");
        assert!(out.contains("type Services = Shop"), "{out}");
        let command_enum = &out[out.find("enum CartCommand").unwrap()..];
        let command_enum = &command_enum[..command_enum.find("enum CartEvent").unwrap()];
        assert!(!command_enum.contains("Shop"), "{command_enum}");
    }

    #[test]
    fn an_infallible_aggregate_has_no_error_type_to_assert() {
        let (clause, _) = checks(quote! {
            impl Notes {
                #[command]
                fn add(&self, text: &str) -> NotesEvent {
                    todo!()
                }

                #[event]
                fn added(&mut self, text: String) {}
            }
        });
        assert!(!clause.contains("__AggregateError"), "{clause}");
        assert!(clause.contains("String : __EventField"), "{clause}");
    }
}
