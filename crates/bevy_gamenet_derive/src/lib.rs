//! `#[derive(NetState)]`: a replicated state from a plain struct, each
//! field stored at the precision its `#[net(...)]` attribute asks for; and
//! `#[derive(Input)]`, a rollback input from a struct of inputs or an enum.
//! Use them through `bevy_gamenet` (`bevy_gamenet::prelude::*`), whose
//! `replication` module documents the attributes.

mod input;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, ExprLit, ExprRange, ExprUnary, Fields, Lit, RangeLimits, UnOp};

/// Derives `bevy_gamenet::replication::NetState` for a struct.
///
/// Field attributes (`#[net(...)]`):
/// - none: the field's `NetField` form, full precision (`f32`, `Vec2`,
///   `Vec3`, `Quat`, integers, `bool`);
/// - `range = MIN..MAX, precision = P` (or `bits = B`) on `f32`, `Vec2`,
///   `Vec3`: each axis in `[MIN, MAX]`, within `P`;
/// - `range = MIN..MAX` (or `..=`) on integers, `bits = B` on unsigned ones;
/// - `rotation` (optionally `bits = B`, 12 by default) on `Quat`: smallest
///   three, 2 + 3 × B bits;
/// - `serde, bytes = N`: any `Serialize + DeserializeOwned + Default` type
///   encoded with bitcode in at most N bytes;
/// - `skip`: not sent (the default on other peers);
/// - `jump`: shown without interpolation;
/// - `transform = translation`, `rotation` or `scale`, with any of the
///   above: the field stands for that part of the entity's `Transform`, and
///   the derive implements `TransformState` (for `replicate_transform`)
///   from the fields so marked (`Vec3` or `Vec2`; `Quat` or an `f32` angle
///   about Z; `Vec3`, `Vec2` or a uniform `f32`).
#[proc_macro_derive(NetState, attributes(net))]
pub fn derive_net_state(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match derive(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Derives `bevy_gamenet::rollback::Input`, the fixed-size bytes of a
/// player's input for one frame:
/// - for a struct whose fields are all `Input` (integers, `bool`, byte
///   arrays, other derived inputs): the fields one after another;
/// - for an enum of unit variants: the variant's index in one byte; a byte
///   naming no variant reads as the enum's `Default`.
///
/// The type also needs `Copy`, `PartialEq`, `Default` and `Debug`.
#[proc_macro_derive(Input)]
pub fn derive_input(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match input::derive(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// How one field is stored.
enum Codec {
    /// `NetField`, full precision.
    Plain,
    /// Floats per axis in a range: `BoundedFloat` (a constant expression).
    Floats(Tokens),
    /// An integer in a range: `BoundedInt` (a constant expression).
    Int(Tokens),
    /// A quaternion, smallest three.
    Rotation { bits: u32 },
    /// An angle in radians, wrapped to a turn.
    Angle { bits: u32 },
    /// bitcode in at most `bytes` bytes.
    Serde { bytes: usize },
    /// Not sent.
    Skip,
}

/// A field's attributes, as written.
#[derive(Default)]
struct Attrs {
    range: Option<Range>,
    precision: Option<Expr>,
    bits: Option<u32>,
    rotation: bool,
    angle: bool,
    serde: bool,
    bytes: Option<usize>,
    skip: bool,
    jump: bool,
    transform: Option<syn::Ident>,
}

fn derive(input: &DeriveInput) -> syn::Result<Tokens> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "derive(NetState) takes a struct without generic parameters",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "derive(NetState) takes a struct",
        ));
    };
    let name = &input.ident;
    let d = quote!(::bevy_gamenet::replication::__derive);
    let mut widths = Vec::new();
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    let mut lerps = Vec::new();
    let mut members = Vec::new();
    let mut links = Vec::new();
    for (i, field) in data.fields.iter().enumerate() {
        let member = match &field.ident {
            Some(ident) => quote!(#ident),
            None => {
                let index = syn::Index::from(i);
                quote!(#index)
            }
        };
        let ty = &field.ty;
        let span = field.span();
        let (codec, jump, part) = codec(field)?;
        if let Some(part) = part {
            links.push(link(&d, &member, &part));
        }
        let jumped = quote_spanned! {span=>
            if t < 1.0 { ::core::clone::Clone::clone(&self.#member) }
            else { ::core::clone::Clone::clone(&next.#member) }
        };
        let (width, write, read, lerp) = match codec {
            Codec::Plain => (
                quote_spanned!(span=> <#ty as #d::NetField>::WIDTHS),
                quote_spanned!(span=> #d::NetField::write(&self.#member, &mut out)),
                quote_spanned!(span=> <#ty as #d::NetField>::read(&mut fields)),
                quote_spanned!(span=> #d::NetField::lerp(&self.#member, &next.#member, t)),
            ),
            Codec::Floats(q) => (
                quote_spanned!(span=> &[#q.bits() as u8; <#ty as #d::QuantizedFloats>::AXES]),
                quote_spanned!(span=> #d::QuantizedFloats::write_quantized(&self.#member, &{ const Q: #d::BoundedFloat = #q; Q }, &mut out)),
                quote_spanned!(span=> <#ty as #d::QuantizedFloats>::read_quantized(&{ const Q: #d::BoundedFloat = #q; Q }, &mut fields)),
                quote_spanned!(span=> #d::NetField::lerp(&self.#member, &next.#member, t)),
            ),
            Codec::Int(q) => (
                quote_spanned!(span=> &[#q.bits() as u8]),
                quote_spanned!(span=> #d::write_int::<#ty>(&{ const Q: #d::BoundedInt = #q; Q }, self.#member, &mut out)),
                quote_spanned!(span=> #d::read_int::<#ty>(&{ const Q: #d::BoundedInt = #q; Q }, &mut fields)),
                jumped.clone(),
            ),
            Codec::Angle { bits } => {
                let b = bits as u8;
                (
                    quote!(&[#b]),
                    quote_spanned!(span=> #d::write_angle(#bits, self.#member, &mut out)),
                    quote_spanned!(span=> #d::read_angle(#bits, &mut fields)),
                    quote_spanned!(span=> #d::lerp_angle(self.#member, next.#member, t)),
                )
            }
            Codec::Rotation { bits } => {
                let b = bits as u8;
                let q = quote!(#d::SmallestThree::new(#bits));
                (
                    quote!(&[2, #b, #b, #b]),
                    quote_spanned!(span=> #d::write_rotation(&#q, &self.#member, &mut out)),
                    quote_spanned!(span=> #d::read_rotation(&#q, &mut fields)),
                    quote_spanned!(span=> #d::slerp(self.#member, next.#member, t)),
                )
            }
            Codec::Serde { bytes } => (
                quote!(&#d::serde_widths::<{ #d::serde_fields(#bytes) }>(#bytes)),
                quote_spanned!(span=> #d::write_serde(&self.#member, #bytes, &mut out)),
                quote_spanned!(span=> #d::read_serde::<#ty>(#bytes, &mut fields)),
                jumped.clone(),
            ),
            Codec::Skip => (
                quote!(&[]),
                quote!(),
                quote_spanned!(span=> ::core::default::Default::default()),
                quote_spanned!(span=> ::core::clone::Clone::clone(&next.#member)),
            ),
        };
        widths.push(width);
        writes.push(write);
        reads.push(read);
        lerps.push(if jump { jumped } else { lerp });
        members.push(member);
    }
    let build = |values: &[Tokens]| match &data.fields {
        Fields::Named(_) => quote!(#name { #(#members: #values),* }),
        Fields::Unnamed(_) => quote!(#name ( #(#values),* )),
        Fields::Unit => quote!(#name),
    };
    let from_fields = build(&reads);
    let interpolate = build(&lerps);
    let transform_state = (!links.is_empty()).then(|| {
        let (copies, applies): (Vec<Tokens>, Vec<Tokens>) = links.into_iter().unzip();
        quote! {
            impl ::bevy_gamenet::replication::TransformState for #name {
                fn copy_from(&mut self, t: &#d::Transform) {
                    #(#copies;)*
                }
                fn apply(&self, t: &mut #d::Transform) {
                    #(#applies;)*
                }
            }
        }
    });
    Ok(quote! {
        #transform_state
        impl ::bevy_gamenet::replication::NetState for #name {
            const WIDTHS: &'static [u8] = {
                const PARTS: &[&[u8]] = &[#(#widths),*];
                const N: usize = #d::widths_len(PARTS);
                const WIDTHS: [u8; N] = #d::concat_widths::<N>(PARTS);
                &WIDTHS
            };
            fn to_fields(&self) -> ::std::vec::Vec<u32> {
                let mut out = ::std::vec::Vec::with_capacity(
                    <Self as ::bevy_gamenet::replication::NetState>::WIDTHS.len(),
                );
                #(#writes;)*
                out
            }
            #[allow(unused_mut, unused_variables)]
            fn from_fields(fields: &[u32]) -> Self {
                let mut fields = #d::FieldReader::new(fields);
                #from_fields
            }
            #[allow(unused_variables)]
            fn interpolate(&self, next: &Self, t: f32) -> Self {
                #interpolate
            }
        }
    })
}

/// How `field` is stored, whether it is shown without interpolation, and
/// the part of the `Transform` it stands for.
fn codec(field: &syn::Field) -> syn::Result<(Codec, bool, Option<syn::Ident>)> {
    let mut a = Attrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("net")) {
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            match key.as_str() {
                "range" => a.range = Some(range(meta.value()?.parse()?)?),
                "precision" => a.precision = Some(meta.value()?.parse()?),
                "bits" => a.bits = Some(meta.value()?.parse::<syn::LitInt>()?.base10_parse()?),
                "bytes" => a.bytes = Some(meta.value()?.parse::<syn::LitInt>()?.base10_parse()?),
                "rotation" => a.rotation = true,
                "angle" => a.angle = true,
                "serde" => a.serde = true,
                "skip" => a.skip = true,
                "jump" => a.jump = true,
                "transform" => {
                    let part: syn::Ident = meta.value()?.parse()?;
                    if !["translation", "rotation", "scale"].contains(&part.to_string().as_str()) {
                        return Err(syn::Error::new(
                            part.span(),
                            "transform = translation, rotation or scale",
                        ));
                    }
                    a.transform = Some(part);
                }
                _ => {
                    return Err(meta.error(
                        "unknown net attribute; expected range, precision, bits, rotation, \
                         angle, serde, bytes, skip, jump or transform",
                    ));
                }
            }
            Ok(())
        })?;
    }
    let err = |msg: &str| Err(syn::Error::new(field.span(), msg));
    if let Some(0) | Some(33..) = a.bits {
        return err("bits must be 1 to 32");
    }
    let codec = if a.skip {
        Codec::Skip
    } else if a.serde {
        match a.bytes {
            Some(bytes @ 1..=4096) => Codec::Serde { bytes },
            _ => return err("serde needs bytes = N (1 to 4096): the most its encoding takes"),
        }
    } else if a.rotation {
        Codec::Rotation {
            bits: a.bits.unwrap_or(12).min(31),
        }
    } else if a.angle {
        Codec::Angle {
            bits: a.bits.unwrap_or(16),
        }
    } else if let Some(Range {
        min,
        max,
        float,
        inclusive,
    }) = a.range
    {
        let d = quote!(::bevy_gamenet::replication::__derive);
        if float || a.precision.is_some() {
            match (a.precision, a.bits) {
                (Some(p), None) => Codec::Floats(quote!(
                    #d::float_codec_with_precision((#min) as f32, (#max) as f32, (#p) as f32)
                )),
                (None, Some(bits)) => {
                    Codec::Floats(quote!(#d::float_codec((#min) as f32, (#max) as f32, #bits)))
                }
                _ => return err("a float range takes precision = P or bits = B"),
            }
        } else {
            let max = if inclusive {
                quote!((#max) as i64)
            } else {
                quote!((#max) as i64 - 1)
            };
            Codec::Int(quote!(#d::int_codec((#min) as i64, #max)))
        }
    } else if let Some(bits) = a.bits {
        let max = ((1u64 << bits) - 1) as i64;
        let d = quote!(::bevy_gamenet::replication::__derive);
        Codec::Int(quote!(#d::int_codec(0, #max)))
    } else {
        Codec::Plain
    };
    Ok((codec, a.jump, a.transform))
}

/// How a field marked `transform = part` is taken from a `Transform` and
/// written to one.
fn link(d: &Tokens, member: &Tokens, part: &syn::Ident) -> (Tokens, Tokens) {
    match part.to_string().as_str() {
        "translation" => (
            quote!(self.#member = #d::AsTranslation::from_translation(t.translation)),
            quote!(t.translation = #d::AsTranslation::to_translation(&self.#member, t.translation)),
        ),
        "rotation" => (
            quote!(self.#member = #d::AsRotation::from_rotation(t.rotation)),
            quote!(t.rotation = #d::AsRotation::to_rotation(&self.#member)),
        ),
        _ => (
            quote!(self.#member = #d::AsScale::from_scale(t.scale)),
            quote!(t.scale = #d::AsScale::to_scale(&self.#member, t.scale)),
        ),
    }
}

/// A `range` attribute: its bounds (expressions), whether either is a
/// float literal, and whether it includes its end.
struct Range {
    min: Expr,
    max: Expr,
    float: bool,
    inclusive: bool,
}

fn range(expr: Expr) -> syn::Result<Range> {
    let span = expr.span();
    let Expr::Range(ExprRange {
        start: Some(start),
        end: Some(end),
        limits,
        ..
    }) = expr
    else {
        return Err(syn::Error::new(span, "expected a range: MIN..MAX"));
    };
    Ok(Range {
        float: is_float(&start) || is_float(&end),
        inclusive: matches!(limits, RangeLimits::Closed(_)),
        min: *start,
        max: *end,
    })
}

/// Whether `expr` is a float literal, maybe negative.
fn is_float(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Float(_), ..
        }) => true,
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => is_float(expr),
        Expr::Paren(p) => is_float(&p.expr),
        _ => false,
    }
}
