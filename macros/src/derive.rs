//! `#[derive(Message)]`, `#[derive(RemoteMessage)]` and `#[derive(Actor)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

use crate::options::{DeriveOptions, private_path};

pub(crate) fn message(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let opts = DeriveOptions::from_attrs(&input.attrs)?;
    if let Some(tag) = &opts.tag {
        return Err(syn::Error::new(
            tag.span(),
            "`tag` is for #[derive(RemoteMessage)]; a local Message never crosses the network",
        ));
    }
    let p = private_path(&opts.krate);
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    Ok(local_message_impl(
        &p,
        quote!(impl #impl_g #p::ractor::Message for #name #ty_g #where_g),
    ))
}

/// ractor's `Message` for a local message, given the impl's head: understudy-actor emits it
/// only where ractor has no blanket impl (see its `__message_impl!`).
pub(crate) fn local_message_impl(p: &TokenStream, head: TokenStream) -> TokenStream {
    quote! { #p::actor::__message_impl! { #head } }
}

/// The items of a remote message, which understudy-actor turns into one clear compile error
/// when its `remote` feature is off (see its `__remote_message!`). `what` names the macro.
pub(crate) fn remote_items(p: &TokenStream, what: &str, items: TokenStream) -> TokenStream {
    quote! { #p::actor::__remote_message! { #what; #items } }
}

pub(crate) fn actor(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let opts = DeriveOptions::from_attrs(&input.attrs)?;
    let p = private_path(&opts.krate);
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_g #p::actor::Actor for #name #ty_g #where_g {}
    })
}

pub(crate) fn remote_message(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let opts = DeriveOptions::from_attrs(&input.attrs)?;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "RemoteMessage cannot be derived for a generic type: its wire tag must name one concrete type. \
             Derive it on a concrete wrapper, or implement `RemoteMessage` by hand with a tag per instantiation",
        ));
    }
    if let syn::Data::Union(u) = &input.data {
        return Err(syn::Error::new(
            u.union_token.span,
            "RemoteMessage cannot be derived for a union; use a struct or an enum",
        ));
    }
    let p = private_path(&opts.krate);
    let name = &input.ident;
    let tag = tag_expr(&p, &opts.tag, &name.to_string());
    let message_impl = serialising_message_impl(&p, name);
    let items = quote! {
        impl #p::actor::RemoteMessage for #name {
            const TAG: #p::actor::Tag = #tag;

            fn to_wire(self) -> ::core::result::Result<#p::ractor::message::SerializedMessage, #p::actor::EncodeError> {
                ::core::result::Result::Ok(#p::actor::remote::cast(
                    #p::actor::remote::encode_args(<Self as #p::actor::RemoteMessage>::TAG, &self)?,
                ))
            }

            fn from_wire(message: #p::ractor::message::SerializedMessage) -> ::core::result::Result<Self, #p::actor::DecodeError> {
                match message {
                    #p::ractor::message::SerializedMessage::Cast { args, .. } => {
                        #p::actor::remote::decode_args::<Self, Self>(<Self as #p::actor::RemoteMessage>::TAG, &args)
                    }
                    other => ::core::result::Result::Err(#p::actor::DecodeError::WrongKind {
                        type_name: ::core::any::type_name::<Self>(),
                        expected: "tell",
                        found: #p::actor::remote::kind(&other),
                    }),
                }
            }
        }


        #message_impl
    };
    Ok(remote_items(&p, "#[derive(RemoteMessage)]", items))
}

/// ractor's `Message` for a `RemoteMessage` type: serialisable, through the wire hooks.
pub(crate) fn serialising_message_impl(p: &TokenStream, name: &syn::Ident) -> TokenStream {
    quote! {
        impl #p::ractor::Message for #name {
            fn serializable() -> bool {
                true
            }
            fn serialize(self) -> ::core::result::Result<#p::ractor::message::SerializedMessage, #p::ractor::message::BoxedDowncastErr> {
                #p::actor::remote::serialize_hook(self)
            }
            fn deserialize(message: #p::ractor::message::SerializedMessage) -> ::core::result::Result<Self, #p::ractor::message::BoxedDowncastErr> {
                #p::actor::remote::deserialize_hook(message)
            }
        }
    }
}

/// `Tag::of("explicit")` or `Tag::of(concat!(module_path!(), "::", "Name"))`.
pub(crate) fn tag_expr(p: &TokenStream, explicit: &Option<LitStr>, type_name: &str) -> TokenStream {
    match explicit {
        Some(tag) => quote!(#p::actor::Tag::of(#tag)),
        None => {
            let suffix = format!("::{type_name}");
            quote!(#p::actor::Tag::of(::core::concat!(::core::module_path!(), #suffix)))
        }
    }
}
