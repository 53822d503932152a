//! `#[messages]`: an `impl` block's `#[message]` methods become an actor's messages.
//!
//! For each `#[message]` method the expansion produces one enum variant (arguments as named
//! fields, plus `reply` for methods that return a value), one arm of `Handler::handle`, and
//! one method on the generated ref trait. The block itself is re-emitted with the
//! `#[message]` markers removed, so the methods stay ordinary, callable, testable methods.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Type, Visibility,
};

use crate::derive::{local_message_impl, remote_items, serialising_message_impl, tag_expr};
use crate::options::{MessagesOptions, private_path};

/// Methods of `ActorRef`/`ActorCell` that a generated method would silently lose to, since
/// inherent methods win over trait methods.
const REF_METHODS: &[&str] = &[
    "call",
    "cast",
    "clone",
    "drain",
    "drain_and_wait",
    "drain_children",
    "drain_children_and_wait",
    "exit_after",
    "get_cell",
    "get_children",
    "get_derived",
    "get_id",
    "get_name",
    "get_status",
    "get_type_id",
    "is_message_type_of",
    "kill",
    "kill_after",
    "kill_and_wait",
    "link",
    "monitor",
    "notify_supervisor",
    "notify_supervisor_and_monitors",
    "send_after",
    "send_interval",
    "send_message",
    "send_serialized",
    "spawn_linked",
    "stop",
    "stop_and_wait",
    "stop_children",
    "stop_children_and_wait",
    "supports_remoting",
    "try_get_supervisor",
    "unlink",
    "unmonitor",
    "wait",
    "where_is",
];

struct Message {
    method: Ident,
    variant: Ident,
    docs: Vec<Attribute>,
    is_async: bool,
    /// Call arguments in order: `None` for the ctx parameter, `Some(field)` otherwise.
    call_args: Vec<Option<Ident>>,
    fields: Vec<(Ident, Type)>,
    reply: Option<Type>,
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let opts: MessagesOptions = syn::parse2(attr)?;
    let mut block: ItemImpl = syn::parse2(item)?;
    if let Some((_, path, _)) = &block.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "#[messages] goes on an inherent impl block (`impl Counter { .. }`), not on a trait impl",
        ));
    }
    if !block.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &block.generics,
            "#[messages] does not support generic actors yet; wrap the generic state in a concrete actor type",
        ));
    }
    let self_ident = match &*block.self_ty {
        Type::Path(tp) if tp.qself.is_none() => tp.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    }
    .ok_or_else(|| {
        syn::Error::new_spanned(&block.self_ty, "#[messages] needs a named actor type")
    })?;

    let mut messages = Vec::new();
    for item in &mut block.items {
        if let ImplItem::Fn(f) = item {
            let before = f.attrs.len();
            f.attrs.retain(|a| !a.path().is_ident("message"));
            if f.attrs.len() != before {
                messages.push(parse_message(f)?);
            }
        }
    }
    if messages.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[messages] found no #[message] methods; mark the methods that should become messages with #[message]",
        ));
    }

    let p = private_path(&opts.krate);
    let self_ty = &block.self_ty;
    let vis = opts.vis.clone().unwrap_or_else(|| syn::parse_quote!(pub));
    let enum_name = opts
        .name
        .clone()
        .unwrap_or_else(|| format_ident!("{}Msg", self_ident));
    let ext_name = opts
        .ext
        .clone()
        .unwrap_or_else(|| format_ident!("{}Ref", self_ident));

    let the_enum = gen_enum(&p, &vis, &enum_name, &self_ident, &messages);
    let handler = gen_handler(&p, self_ty, &enum_name, &messages);
    let ext = gen_ext(&p, &vis, &enum_name, &ext_name, &self_ident, &messages);
    let message_impl = if opts.remote {
        gen_remote(&p, &enum_name, &opts, &messages)
    } else {
        local_message_impl(&p, quote!(impl #p::ractor::Message for #enum_name))
    };

    Ok(quote! {
        #block
        #the_enum
        #message_impl
        #handler
        #ext
    })
}

fn parse_message(f: &ImplItemFn) -> syn::Result<Message> {
    let sig = &f.sig;
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a #[message] method cannot be generic: each message is one enum variant with concrete types",
        ));
    }
    let name = sig.ident.to_string();
    if REF_METHODS.contains(&name.as_str()) {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            format!(
                "`{name}` is already a method of ractor's ActorRef, which would shadow the generated one; rename this message method"
            ),
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.colon_token.is_none() => {}
        Some(other) => {
            return Err(syn::Error::new_spanned(
                other,
                "a #[message] method takes `&self` or `&mut self` (the actor handles the message in place)",
            ));
        }
        None => {
            return Err(syn::Error::new_spanned(
                sig,
                "a #[message] method takes `&self` or `&mut self` (the actor handles the message in place)",
            ));
        }
    }
    let mut call_args = Vec::new();
    let mut fields = Vec::new();
    for arg in inputs {
        let FnArg::Typed(pt) = arg else { continue };
        if is_ctx(&pt.ty) {
            call_args.push(None);
            continue;
        }
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new_spanned(
                &pt.pat,
                "message arguments need plain names (they become the variant's fields); destructure inside the method",
            ));
        };
        if pi.ident == "reply" {
            return Err(syn::Error::new_spanned(
                &pi.ident,
                "`reply` is the name of the generated reply port field; call this argument something else",
            ));
        }
        if contains_reference(&pt.ty) {
            return Err(syn::Error::new_spanned(
                &pt.ty,
                "message arguments must be owned types (messages outlive the caller's borrows); take `String`/`Vec<_>` instead of a reference",
            ));
        }
        call_args.push(Some(pi.ident.clone()));
        fields.push((pi.ident.clone(), (*pt.ty).clone()));
    }
    let reply = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(t) if t.elems.is_empty() => None,
            ty => {
                if contains_reference(ty) {
                    return Err(syn::Error::new_spanned(
                        ty,
                        "a #[message] method must return an owned value (it is sent back to the asker)",
                    ));
                }
                Some(ty.clone())
            }
        },
    };
    Ok(Message {
        method: sig.ident.clone(),
        variant: Ident::new(&camel(&name), sig.ident.span()),
        docs: docs_or_default(f, &name),
        is_async: sig.asyncness.is_some(),
        call_args,
        fields,
        reply,
    })
}

/// The method's doc comments, or a line naming the message so `missing_docs` stays quiet.
fn docs_or_default(f: &ImplItemFn, name: &str) -> Vec<Attribute> {
    let docs: Vec<Attribute> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    if docs.is_empty() {
        let line = format!("The `{name}` message.");
        vec![syn::parse_quote!(#[doc = #line])]
    } else {
        docs
    }
}

/// `&Ctx<..>` (any path ending in `Ctx`).
fn is_ctx(ty: &Type) -> bool {
    if let Type::Reference(r) = ty
        && let Type::Path(tp) = &*r.elem
    {
        return tp.path.segments.last().is_some_and(|s| s.ident == "Ctx");
    }
    false
}

fn contains_reference(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            // `&'static T` is fine (it outlives any message); any other borrow is not.
            match &r.lifetime {
                Some(l) if l.ident == "static" => syn::visit::visit_type(self, &r.elem),
                _ => self.0 = true,
            }
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            if l.ident != "static" {
                self.0 = true;
            }
        }
    }
    let mut f = Finder(false);
    syn::visit::visit_type(&mut f, ty);
    f.0
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn gen_enum(
    p: &TokenStream,
    vis: &Visibility,
    name: &Ident,
    actor: &Ident,
    msgs: &[Message],
) -> TokenStream {
    let doc = format!(
        "The messages of [`{actor}`], generated by `#[messages]`: one variant per `#[message]` method."
    );
    let variants = msgs.iter().map(|m| {
        let v = &m.variant;
        let docs = &m.docs;
        let fields = m
            .fields
            .iter()
            .map(|(n, t)| quote!(#[allow(missing_docs)] #n: #t));
        let reply = m
            .reply
            .as_ref()
            .map(|r| quote!(#[doc = "Where the answer goes."] reply: #p::actor::Reply<#r>));
        let all = fields.chain(reply);
        quote! { #(#docs)* #v { #(#all),* } }
    });
    quote! {
        #[doc = #doc]
        #vis enum #name {
            #(#variants,)*
            /// A monitored actor exited: handled by `Actor::on_down`, in mailbox order. Boxed,
            /// so that it does not make every message of the enum bigger.
            #[doc(hidden)]
            __Down(::std::boxed::Box<#p::actor::Down>),
        }

        impl ::core::convert::From<#p::actor::Down> for #name {
            fn from(down: #p::actor::Down) -> Self {
                #name::__Down(::std::boxed::Box::new(down))
            }
        }
    }
}

fn gen_handler(
    p: &TokenStream,
    self_ty: &Type,
    enum_name: &Ident,
    msgs: &[Message],
) -> TokenStream {
    let arms = msgs.iter().map(|m| {
        let v = &m.variant;
        let method = &m.method;
        let field_names = m.fields.iter().map(|(n, _)| n);
        let args = m.call_args.iter().map(|a| match a {
            Some(n) => quote!(#n),
            None => quote!(__understudy_ctx),
        });
        let await_ = m.is_async.then(|| quote!(.await));
        let call = quote!(self.#method(#(#args),*)#await_);
        match &m.reply {
            Some(_) => quote! {
                #enum_name::#v { #(#field_names,)* reply } => {
                    let answer = #call;
                    // The asker may have given up (timeout); that is not the actor's failure.
                    let _ = reply.send(answer);
                }
            },
            None => quote! {
                #enum_name::#v { #(#field_names),* } => { #call; }
            },
        }
    });
    quote! {
        impl #p::actor::Handler for #self_ty {
            type Msg = #enum_name;

            // Not an `async fn`: a DOWN goes to `on_down` in a boxed future of its own (it is
            // rare), so the messages' future stays what the methods make it (no await point
            // of its own, nothing more kept inline in the actor).
            #[allow(unused_variables, clippy::unit_arg)]
            #[inline]
            fn handle(
                &mut self,
                __understudy_ctx: &#p::actor::Ctx<Self>,
                message: #enum_name,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<(), #p::actor::ActorError>> + ::core::marker::Send {
                let message = match message {
                    #enum_name::__Down(down) => {
                        return #p::actor::__Either::Left(::std::boxed::Box::pin(
                            <Self as #p::actor::Actor>::on_down(self, __understudy_ctx, *down),
                        ));
                    }
                    message => message,
                };
                #p::actor::__Either::Right(async move {
                    match message {
                        #(#arms)*
                        // Taken above.
                        #enum_name::__Down(_) => {}
                    }
                    ::core::result::Result::Ok(())
                })
            }
        }
    }
}

fn gen_ext(
    p: &TokenStream,
    vis: &Visibility,
    enum_name: &Ident,
    ext: &Ident,
    actor: &Ident,
    msgs: &[Message],
) -> TokenStream {
    let doc = format!(
        "Typed tell/ask methods of [`{actor}`] on its `ActorRef` (and on any other message `Target`, such as a name-addressed ref), generated by `#[messages]`. Bring it into scope to call them."
    );
    let mut decls = Vec::new();
    let mut impls = Vec::new();
    for m in msgs {
        let method = &m.method;
        let v = &m.variant;
        let docs = &m.docs;
        let params = m
            .fields
            .iter()
            .map(|(n, t)| quote!(#n: #t))
            .collect::<Vec<_>>();
        let names = m.fields.iter().map(|(n, _)| n).collect::<Vec<_>>();
        match &m.reply {
            None => {
                let sig = quote!(fn #method(&self, #(#params),*) -> ::core::result::Result<(), #p::actor::TellError>);
                decls.push(quote! { #(#docs)* #sig; });
                impls.push(quote! {
                    #[inline]
                    #sig { #p::actor::Target::tell_to(self, #enum_name::#v { #(#names),* }) }
                });
            }
            Some(r) => {
                let ret = quote!(#p::actor::Ask<#enum_name, #r, impl ::core::ops::FnOnce(#p::ractor::RpcReplyPort<#r>) -> #enum_name + ::core::marker::Send>);
                let sig = quote!(fn #method(&self, #(#params),*) -> #ret);
                decls.push(quote! { #(#docs)* #sig; });
                impls.push(quote! {
                    #[inline]
                    #sig { #p::actor::Target::ask_to(self, move |reply| #enum_name::#v { #(#names,)* reply: reply.into() }) }
                });
            }
        }
    }
    quote! {
        #[doc = #doc]
        #vis trait #ext { #(#decls)* }
        impl<__T: #p::actor::Target<#enum_name>> #ext for __T { #(#impls)* }
    }
}

fn gen_remote(
    p: &TokenStream,
    enum_name: &Ident,
    opts: &MessagesOptions,
    msgs: &[Message],
) -> TokenStream {
    let tag = tag_expr(p, &opts.tag, &enum_name.to_string());
    let message_impl = serialising_message_impl(p, enum_name);
    let encode_arms = msgs.iter().enumerate().map(|(i, m)| {
        let i = i as u32;
        let v = &m.variant;
        let names = m.fields.iter().map(|(n, _)| n).collect::<Vec<_>>();
        // An `ActorRef` travels as its address (see understudy-actor's `wire_ref`).
        let values = m.fields.iter().map(|(n, t)| match actor_ref_target(t) {
            Some(_) => quote!(#p::actor::wire_ref::Out(&#n)),
            None => quote!(#n),
        });
        let args = quote!(#p::actor::remote::encode_args(
            <Self as #p::actor::RemoteMessage>::TAG, &(#i, (#(&#values,)*)))?);
        match m.reply {
            None => quote! { #enum_name::#v { #(#names),* } => ::core::result::Result::Ok(#p::actor::remote::cast(#args)), },
            Some(_) => quote! { #enum_name::#v { #(#names,)* reply } => #p::actor::remote::call(#args, reply), },
        }
    });
    let decode_arms = msgs.iter().enumerate().map(|(i, m)| {
        let i = i as u32;
        let v = &m.variant;
        let names = m.fields.iter().map(|(n, _)| n).collect::<Vec<_>>();
        let tys = m.fields.iter().map(|(_, t)| match actor_ref_target(t) {
            Some(target) => quote!(#p::actor::wire_ref::In<#target>),
            None => quote!(#t),
        });
        let unwrap_refs = m.fields.iter().filter_map(|(n, t)| {
            actor_ref_target(t).map(|_| quote!(let #n = #n.into_ref();))
        });
        let fields = quote! {
            let (#(#names,)*): (#(#tys,)*) = #p::actor::remote::decode_payload(rest)?;
            #(#unwrap_refs)*
        };
        match &m.reply {
            None => quote! {
                (#i, ::core::option::Option::None) => { #fields ::core::result::Result::Ok(#enum_name::#v { #(#names),* }) }
            },
            Some(r) => quote! {
                (#i, ::core::option::Option::Some(port)) => {
                    #fields
                    let reply = #p::actor::remote::reply_port::<#r>(port)?;
                    ::core::result::Result::Ok(#enum_name::#v { #(#names,)* reply })
                }
            },
        }
    });
    let count = msgs.len() as u32;
    let items = quote! {
        impl #p::actor::RemoteMessage for #enum_name {
            const TAG: #p::actor::Tag = #tag;

            fn to_wire(self) -> ::core::result::Result<#p::ractor::message::SerializedMessage, #p::actor::EncodeError> {
                match self {
                    #(#encode_arms)*
                    #enum_name::__Down(_) => ::core::result::Result::Err(#p::actor::EncodeError::LocalOnly {
                        type_name: ::core::any::type_name::<Self>(),
                        what: "a DOWN notice",
                    }),
                }
            }

            fn from_wire(message: #p::ractor::message::SerializedMessage) -> ::core::result::Result<Self, #p::actor::DecodeError> {
                let (args, port) = match message {
                    #p::ractor::message::SerializedMessage::Cast { args, .. } => (args, ::core::option::Option::None),
                    #p::ractor::message::SerializedMessage::Call { args, reply, .. } => (args, ::core::option::Option::Some(reply)),
                    other => return ::core::result::Result::Err(#p::actor::DecodeError::WrongKind {
                        type_name: ::core::any::type_name::<Self>(),
                        expected: "tell or ask",
                        found: #p::actor::remote::kind(&other),
                    }),
                };
                let payload = #p::actor::remote::check_tag::<Self>(<Self as #p::actor::RemoteMessage>::TAG, &args)?;
                let (index, rest) = #p::actor::remote::take_variant::<Self>(payload)?;
                match (index, port) {
                    #(#decode_arms)*
                    (index, port) if index < #count => ::core::result::Result::Err(#p::actor::DecodeError::WrongKind {
                        type_name: ::core::any::type_name::<Self>(),
                        expected: if port.is_some() { "tell" } else { "ask" },
                        found: if port.is_some() { "ask" } else { "tell" },
                    }),
                    (index, _) => ::core::result::Result::Err(#p::actor::DecodeError::UnknownVariant {
                        type_name: ::core::any::type_name::<Self>(),
                        index,
                    }),
                }
            }
        }


        #message_impl
    };
    remote_items(p, "#[messages(remote)]", items)
}

/// `M` if `ty` is written `ActorRef<M>` (any path ending in `ActorRef`).
fn actor_ref_target(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "ActorRef" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(target) if args.args.len() == 1 => Some(target),
        _ => None,
    }
}
