//! Parsing of `#[understudy(...)]` and `#[messages(...)]` options.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, LitStr, Path, Token, Visibility};

/// Options shared by the derives: `#[understudy(crate = path, tag = "...")]`.
#[derive(Default)]
pub(crate) struct DeriveOptions {
    pub(crate) krate: Option<Path>,
    pub(crate) tag: Option<LitStr>,
}

impl DeriveOptions {
    pub(crate) fn from_attrs(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut out = DeriveOptions::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("understudy")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    out.krate = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("tag") {
                    out.tag = Some(meta.value()?.parse()?);
                } else {
                    return Err(meta.error(
                        "unknown understudy option; expected `crate = path` or `tag = \"name\"`",
                    ));
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// Options of `#[messages(...)]`.
#[derive(Default)]
pub(crate) struct MessagesOptions {
    pub(crate) remote: bool,
    pub(crate) name: Option<Ident>,
    pub(crate) ext: Option<Ident>,
    pub(crate) vis: Option<Visibility>,
    pub(crate) tag: Option<LitStr>,
    pub(crate) krate: Option<Path>,
}

impl Parse for MessagesOptions {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut out = MessagesOptions::default();
        while !input.is_empty() {
            let key: Ident = if input.peek(Token![crate]) {
                let k: Token![crate] = input.parse()?;
                Ident::new("crate", k.span)
            } else {
                input.parse()?
            };
            match key.to_string().as_str() {
                "remote" => out.remote = true,
                "name" => {
                    input.parse::<Token![=]>()?;
                    out.name = Some(input.parse()?);
                }
                "ext" => {
                    input.parse::<Token![=]>()?;
                    out.ext = Some(input.parse()?);
                }
                "vis" => {
                    input.parse::<Token![=]>()?;
                    out.vis = Some(input.parse()?);
                }
                "tag" => {
                    input.parse::<Token![=]>()?;
                    out.tag = Some(input.parse()?);
                }
                "crate" => {
                    input.parse::<Token![=]>()?;
                    out.krate = Some(input.parse()?);
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown #[messages] option `{other}`; expected `remote`, `name = Ident`, `ext = Ident`, `vis = pub(..)`, `tag = \"..\"` or `crate = path`"
                        ),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(out)
    }
}

/// The path the generated code uses to reach understudy's internals.
pub(crate) fn private_path(krate: &Option<Path>) -> proc_macro2::TokenStream {
    match krate {
        Some(p) => quote::quote!(#p::__private),
        None => {
            let id = Ident::new("understudy", Span::call_site());
            quote::quote!(::#id::__private)
        }
    }
}
