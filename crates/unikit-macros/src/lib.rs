//! `#[unikit::main]`: marks the application's entry function.
use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemFn, parse_macro_input};

/// Turns `fn main()` (returning `()`, an integer exit code, or a `Result`)
/// into the unikernel's application entry point.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[unikit::main] takes no arguments")
            .to_compile_error()
            .into();
    }
    let f = parse_macro_input!(item as ItemFn);
    if !f.sig.inputs.is_empty() || f.sig.asyncness.is_some() || !f.sig.generics.params.is_empty() {
        return syn::Error::new_spanned(
            &f.sig,
            "#[unikit::main] needs a plain `fn main()`; read arguments with unikit::env::args()",
        )
        .to_compile_error()
        .into();
    }
    let name = &f.sig.ident;
    quote! {
        #f

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __unikit_main() -> i32 {
            ::unikit::rt::run(env!("CARGO_PKG_NAME"), #name)
        }
    }
    .into()
}
