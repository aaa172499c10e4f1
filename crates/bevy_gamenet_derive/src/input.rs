//! `#[derive(Input)]`: a rollback input from a struct of inputs (its fields
//! one after another) or an enum of unit variants (one byte).

use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

/// The trait, as the derive names it.
fn input_trait() -> Tokens {
    quote!(::bevy_gamenet::rollback::Input)
}

pub(crate) fn derive(input: &DeriveInput) -> syn::Result<Tokens> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "derive(Input) takes a type without generic parameters",
        ));
    }
    match &input.data {
        Data::Struct(data) => Ok(for_struct(&input.ident, &data.fields)),
        Data::Enum(data) => for_enum(&input.ident, data),
        Data::Union(_) => Err(syn::Error::new(
            Span::call_site(),
            "derive(Input) takes a struct or an enum of unit variants",
        )),
    }
}

/// Fields one after another, each in its own `Input` encoding.
fn for_struct(name: &syn::Ident, fields: &Fields) -> Tokens {
    let input = input_trait();
    let types: Vec<&syn::Type> = fields.iter().map(|f| &f.ty).collect();
    // Each field's offset: the sizes of the fields before it.
    let offsets: Vec<Tokens> = (0..types.len())
        .map(|i| {
            let before = &types[..i];
            quote!(0usize #(+ <#before as #input>::SIZE)*)
        })
        .collect();
    let bindings: Vec<syn::Ident> = (0..types.len())
        .map(|i| format_ident!("__field{i}"))
        .collect();
    let pattern = match fields {
        Fields::Named(named) => {
            let names = named.named.iter().map(|f| &f.ident);
            quote!({ #(#names: #bindings),* })
        }
        Fields::Unnamed(_) => quote!(( #(#bindings),* )),
        Fields::Unit => quote!(),
    };
    let writes = types.iter().zip(&offsets).zip(&bindings).map(|((ty, at), b)| {
        quote!(<#ty as #input>::write(#b, &mut out[#at..#at + <#ty as #input>::SIZE]);)
    });
    let reads = types
        .iter()
        .zip(&offsets)
        .map(|(ty, at)| quote!(<#ty as #input>::read(&bytes[#at..#at + <#ty as #input>::SIZE])));
    let built = match fields {
        Fields::Named(named) => {
            let names = named.named.iter().map(|f| &f.ident);
            quote!(#name { #(#names: #reads),* })
        }
        Fields::Unnamed(_) => quote!(#name( #(#reads),* )),
        Fields::Unit => quote!(#name),
    };
    quote! {
        impl #input for #name {
            const SIZE: usize = 0usize #(+ <#types as #input>::SIZE)*;
            #[allow(unused_variables)]
            fn write(&self, out: &mut [u8]) {
                let #name #pattern = self;
                #(#writes)*
            }
            #[allow(unused_variables)]
            fn read(bytes: &[u8]) -> Self {
                #built
            }
        }
    }
}

/// The variant's index in one byte; a byte naming no variant reads as the
/// default (bytes come from peers).
fn for_enum(name: &syn::Ident, data: &syn::DataEnum) -> syn::Result<Tokens> {
    if data.variants.len() > 256 {
        return Err(syn::Error::new(
            Span::call_site(),
            "derive(Input) takes an enum of at most 256 variants",
        ));
    }
    let mut variants = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new(
                v.span(),
                "derive(Input) takes an enum of unit variants (derive it for a struct to carry data)",
            ));
        }
        variants.push(&v.ident);
    }
    let input = input_trait();
    let index: Vec<u8> = (0..variants.len()).map(|i| i as u8).collect();
    Ok(quote! {
        impl #input for #name {
            const SIZE: usize = 1;
            fn write(&self, out: &mut [u8]) {
                out[0] = match self {
                    #(#name::#variants => #index,)*
                };
            }
            fn read(bytes: &[u8]) -> Self {
                match bytes[0] {
                    #(#index => #name::#variants,)*
                    #[allow(unreachable_patterns)]
                    _ => <#name as ::core::default::Default>::default(),
                }
            }
        }
    })
}
