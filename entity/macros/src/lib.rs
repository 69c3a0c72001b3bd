//! The `#[behaviour(...)]` attribute: gives a SeaORM `Model` the Collex behaviours.
//!
//! It owns only code generation; the behaviours' meaning lives in `entity::behaviour` and `entity::repo`.
//! Placed above `#[derive(DeriveEntityModel)]` (attribute macros expand before derives), it
//!
//! - adds the behaviour columns with their fixed names and types, so the DDL, the entity and the TypeScript
//!   types cannot disagree (`id`, `created_at`, `updated_at`; `created_by`, `updated_by`; `deleted_at`;
//!   `business_id`; `version`), and rejects a hand-written one;
//! - implements `BaseModel`, `AuditableEntity`, `SoftDeletable`, `BusinessScoped`, `Versioned` and the
//!   `Behaviours` descriptor for the module's `Entity`, including the one list of columns the behaviours own
//!   (the repository refuses a caller's write to any of them) and a decoder that reads a row by position;
//! - for `BusinessScoped`, the `belongs_to businesses` relation (`Related<businesses::Entity>`) and its
//!   foreign key `business_id → businesses.id ON DELETE CASCADE`, so a scoped entity cannot forget them;
//! - records the indexes declared with `#[index(...)]` next to the fields, and the unique columns declared
//!   `#[global_unique(a, b)]` (unique across businesses, not per business: see `Behaviours::GLOBAL_UNIQUE`);
//! - implements `ActiveModelBehavior` so direct `ActiveModel` writes stamp ids and timestamps too.
//!
//! One line per behaviour: `#[behaviour(SoftDeletable)]` lines stack, or list several in one attribute.
//! Its error cases are compile-fail tests in `entity/tests/ui`.

use std::collections::BTreeSet;

use heck::ToUpperCamelCase;
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    Attribute, Data, DeriveInput, Fields, Ident, LitStr, Token, parse::Parser, parse_macro_input,
    punctuated::Punctuated, spanned::Spanned,
};

const KNOWN: [&str; 5] = [
    "BaseModel",
    "AuditableEntity",
    "SoftDeletable",
    "BusinessScoped",
    "Versioned",
];

/// The behaviour columns and the behaviour that adds each: the source of the reserved names, of the fields
/// added and of the `owned_columns()` list the repository checks every write against.
const OWNED: [(&str, &str); 8] = [
    ("id", "BaseModel"),
    ("created_at", "BaseModel"),
    ("updated_at", "BaseModel"),
    ("created_by", "AuditableEntity"),
    ("updated_by", "AuditableEntity"),
    ("deleted_at", "SoftDeletable"),
    ("business_id", "BusinessScoped"),
    ("version", "Versioned"),
];

/// Opts a SeaORM entity `Model` into Collex behaviours. See the crate docs of `entity`.
#[proc_macro_attribute]
pub fn behaviour(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as DeriveInput);
    match expand(args.into(), item) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct IndexSpec {
    name: String,
    columns: Vec<String>,
    unique: bool,
    predicate: Option<String>,
    span: Span,
}

fn parse_names(ts: TokenStream2, out: &mut BTreeSet<String>) -> syn::Result<()> {
    let names = Punctuated::<Ident, Token![,]>::parse_terminated.parse2(ts)?;
    for n in names {
        let s = n.to_string();
        if !KNOWN.contains(&s.as_str()) {
            return Err(syn::Error::new(
                n.span(),
                format!("unknown behaviour `{s}`: expected one of {}", KNOWN.join(", ")),
            ));
        }
        out.insert(s);
    }
    Ok(())
}

fn is_behaviour_attr(a: &Attribute) -> bool {
    a.path().segments.last().is_some_and(|s| s.ident == "behaviour")
}

fn parse_index(attr: &Attribute) -> syn::Result<IndexSpec> {
    let mut spec = IndexSpec {
        name: String::new(),
        columns: Vec::new(),
        unique: false,
        predicate: None,
        span: attr.span(),
    };
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("name") {
            spec.name = meta.value()?.parse::<LitStr>()?.value();
        } else if meta.path.is_ident("columns") {
            meta.parse_nested_meta(|col| {
                let ident = col
                    .path
                    .get_ident()
                    .ok_or_else(|| col.error("expected a column name"))?;
                spec.columns.push(ident.to_string());
                Ok(())
            })?;
        } else if meta.path.is_ident("unique") {
            spec.unique = true;
        } else if meta.path.is_ident("where") {
            spec.predicate = Some(meta.value()?.parse::<LitStr>()?.value());
        } else {
            return Err(meta.error("expected `name = \"..\"`, `columns(a, b)`, `unique` or `where = \"..\"`"));
        }
        Ok(())
    })?;
    if spec.name.is_empty() {
        return Err(syn::Error::new(
            attr.span(),
            "#[index] needs `name = \"idx_...\"`",
        ));
    }
    if spec.columns.is_empty() {
        return Err(syn::Error::new(attr.span(), "#[index] needs `columns(a, b, ..)`"));
    }
    Ok(spec)
}

fn table_name(attrs: &[Attribute]) -> syn::Result<String> {
    let mut name = None;
    for a in attrs.iter().filter(|a| a.path().is_ident("sea_orm")) {
        a.parse_nested_meta(|meta| {
            if meta.path.is_ident("table_name") {
                name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.input.peek(Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        })?;
    }
    name.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "#[behaviour] needs #[sea_orm(table_name = \"..\")] on the model",
        )
    })
}

/// What SeaORM's `DeriveEntityModel` makes of a field: skipped (`ignore`) or a `Column` variant.
fn column_variant(field: &syn::Field) -> syn::Result<Option<Ident>> {
    let Some(ident) = &field.ident else {
        return Ok(None);
    };
    let mut ignore = false;
    let mut enum_name = None;
    for a in field.attrs.iter().filter(|a| a.path().is_ident("sea_orm")) {
        a.parse_nested_meta(|meta| {
            if meta.path.is_ident("ignore") {
                ignore = true;
            } else if meta.path.is_ident("enum_name") {
                enum_name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.input.peek(Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        })?;
    }
    if ignore {
        return Ok(None);
    }
    let name = enum_name.unwrap_or_else(|| ident.to_string().trim_start_matches("r#").to_upper_camel_case());
    Ok(Some(Ident::new(&name, ident.span())))
}

fn expand(args: TokenStream2, mut item: DeriveInput) -> syn::Result<TokenStream2> {
    let mut set = BTreeSet::new();
    parse_names(args, &mut set)?;
    // Later `#[behaviour(..)]` lines are still plain attributes here: fold them into this expansion.
    let mut rest = Vec::new();
    let mut indexes = Vec::new();
    let mut global_unique: Vec<(String, Span)> = Vec::new();
    for a in std::mem::take(&mut item.attrs) {
        if is_behaviour_attr(&a) {
            let list = a.meta.require_list()?;
            parse_names(list.tokens.clone(), &mut set)?;
        } else if a.path().is_ident("index") {
            indexes.push(parse_index(&a)?);
        } else if a.path().is_ident("global_unique") {
            a.parse_nested_meta(|col| {
                let ident = col
                    .path
                    .get_ident()
                    .ok_or_else(|| col.error("expected a column name"))?;
                global_unique.push((ident.to_string(), ident.span()));
                Ok(())
            })?;
        } else {
            rest.push(a);
        }
    }
    item.attrs = rest;
    let table = table_name(&item.attrs)?;
    set.insert("BaseModel".to_owned());
    let has = |b: &str| set.contains(b);
    let auditable = has("AuditableEntity");
    let soft = has("SoftDeletable");
    let scoped = has("BusinessScoped");
    let versioned = has("Versioned");

    let Data::Struct(data) = &mut item.data else {
        return Err(syn::Error::new(
            item.ident.span(),
            "#[behaviour] applies to a struct `Model`",
        ));
    };
    let Fields::Named(fields) = &mut data.fields else {
        return Err(syn::Error::new(
            item.ident.span(),
            "#[behaviour] needs named fields",
        ));
    };

    let mut declared = BTreeSet::new();
    for f in &fields.named {
        let Some(ident) = &f.ident else { continue };
        let name = ident.to_string();
        if let Some((_, owner)) = OWNED.iter().find(|(r, _)| *r == name) {
            return Err(syn::Error::new(
                ident.span(),
                format!("`{name}` is a behaviour column added by #[behaviour({owner})]: remove the field"),
            ));
        }
        declared.insert(name);
    }
    let owned: Vec<(&str, &str)> = OWNED.into_iter().filter(|(_, b)| has(b)).collect();
    for (c, span) in &global_unique {
        if !declared.contains(c) {
            return Err(syn::Error::new(
                *span,
                format!("#[global_unique] names column `{c}`, which the model does not have"),
            ));
        }
    }
    let global_unique_names: Vec<&String> = global_unique.iter().map(|(c, _)| c).collect();
    for idx in &indexes {
        for c in &idx.columns {
            if !declared.contains(c) && !owned.iter().any(|(r, _)| r == c) {
                return Err(syn::Error::new(
                    idx.span,
                    format!(
                        "index `{}` names column `{c}`, which the model does not have",
                        idx.name
                    ),
                ));
            }
        }
    }

    let mut front: Vec<syn::Field> = Vec::new();
    let mut back: Vec<syn::Field> = Vec::new();
    let field = |ts: TokenStream2| syn::Field::parse_named.parse2(ts);
    front.push(field(quote! {
        /// Primary key: a UUID v7, generated in Rust so ids sort by creation time.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: ::entity::__private::Uuid
    })?);
    if scoped {
        back.push(field(quote! { /// The business the row belongs to.
        pub business_id: ::entity::__private::Uuid })?);
    }
    if auditable {
        back.push(field(quote! { /// Who created the row.
        #[sea_orm(nullable)] pub created_by: Option<::entity::__private::Uuid> })?);
        back.push(field(quote! { /// Who last changed the row.
        #[sea_orm(nullable)] pub updated_by: Option<::entity::__private::Uuid> })?);
    }
    back.push(field(quote! {
        /// When the row was inserted.
        #[sea_orm(default_expr = "::entity::__private::Expr::current_timestamp()")]
        pub created_at: ::entity::__private::DateTimeUtc
    })?);
    back.push(field(quote! {
        /// When the row last changed.
        #[sea_orm(default_expr = "::entity::__private::Expr::current_timestamp()")]
        pub updated_at: ::entity::__private::DateTimeUtc
    })?);
    if soft {
        back.push(field(quote! {
            /// When the row was soft-deleted; `null` while live.
            #[sea_orm(nullable)] pub deleted_at: Option<::entity::__private::DateTimeUtc>
        })?);
    }
    if versioned {
        back.push(field(
            quote! { /// Optimistic-locking version, 1 on insert, +1 on every update.
            #[sea_orm(default_value = 1)] pub version: i32 },
        )?);
    }
    let own: Vec<syn::Field> = std::mem::take(&mut fields.named).into_iter().collect();
    fields.named = front.into_iter().chain(own).chain(back).collect();

    // Positional decoding: the select lists `Column::iter()`, which follows the field order (ignored fields
    // have no column). `decode_columns` lets the repository check that order once before trusting positions.
    let mut decode_fields = Vec::new();
    let mut decode_columns = Vec::new();
    for f in &fields.named {
        let (Some(ident), ty) = (&f.ident, &f.ty) else {
            continue;
        };
        match column_variant(f)? {
            Some(variant) => {
                let pos = decode_columns.len();
                decode_fields.push(quote! {
                    #ident: <#ty as ::entity::__private::TryGetable>::try_get_by_index(row, #pos)?
                });
                decode_columns.push(quote!(Column::#variant));
            }
            None => decode_fields.push(quote!(#ident: ::core::default::Default::default())),
        }
    }

    let some_or_none = |on: bool, ts: TokenStream2| if on { quote!(Some(#ts)) } else { quote!(None) };
    let audit_cols = some_or_none(auditable, quote!((Column::CreatedBy, Column::UpdatedBy)));
    let deleted_col = some_or_none(soft, quote!(Column::DeletedAt));
    let business_col = some_or_none(scoped, quote!(Column::BusinessId));
    let version_col = some_or_none(versioned, quote!(Column::Version));
    let business_rel = some_or_none(
        scoped,
        quote!(<Entity as ::entity::BusinessScoped>::business_relation()),
    );
    let owned_entries = owned.iter().map(|(name, behaviour)| {
        let variant = format_ident!("{}", name.to_upper_camel_case());
        let behaviour = format_ident!("{}", behaviour);
        quote! {
            ::entity::OwnedColumn {
                column: Column::#variant,
                name: #name,
                behaviour: ::entity::Behaviour::#behaviour,
            }
        }
    });
    let index_defs = indexes.iter().map(|i| {
        let name = &i.name;
        let cols = &i.columns;
        let unique = i.unique;
        let pred = match &i.predicate {
            Some(p) => quote!(Some(#p)),
            None => quote!(None),
        };
        quote! { ::entity::IndexDef { name: #name, columns: &[#(#cols),*], unique: #unique, predicate: #pred } }
    });

    let mut impls = quote! {
        impl ::entity::BaseModel for Entity {
            fn id_column() -> Column { Column::Id }
            fn created_at_column() -> Column { Column::CreatedAt }
            fn updated_at_column() -> Column { Column::UpdatedAt }
        }
        impl ::entity::Behaviours for Entity {
            const TABLE: &'static str = #table;
            const INDEXES: &'static [::entity::IndexDef] = &[#(#index_defs),*];
            const GLOBAL_UNIQUE: &'static [&'static str] = &[#(#global_unique_names),*];
            fn audit_columns() -> Option<(Column, Column)> { #audit_cols }
            fn deleted_at_column() -> Option<Column> { #deleted_col }
            fn business_id_column() -> Option<Column> { #business_col }
            fn version_column() -> Option<Column> { #version_col }
            fn owned_columns() -> &'static [::entity::OwnedColumn<Column>] {
                static OWNED: &[::entity::OwnedColumn<Column>] = &[#(#owned_entries),*];
                OWNED
            }
            fn business_relation() -> Option<::entity::__private::RelationDef> { #business_rel }
            fn decode_columns() -> &'static [Column] {
                static COLUMNS: &[Column] = &[#(#decode_columns),*];
                COLUMNS
            }
            fn decode_row(
                row: &::entity::__private::QueryResult,
            ) -> Result<Model, ::entity::__private::DbErr> {
                Ok(Model { #(#decode_fields),* })
            }
            fn statement_cache() -> &'static ::entity::StatementCache {
                static CACHE: ::entity::StatementCache = ::entity::StatementCache::new();
                &CACHE
            }
        }
        #[::entity::__private::async_trait]
        impl ::entity::__private::ActiveModelBehavior for ActiveModel {
            async fn before_save<C>(self, _db: &C, insert: bool) -> Result<Self, ::entity::__private::DbErr>
            where
                C: ::entity::__private::ConnectionTrait,
            {
                ::entity::hooks::before_save::<Entity>(self, insert)
            }
        }
    };
    if auditable {
        impls.extend(quote! {
            impl ::entity::AuditableEntity for Entity {
                fn created_by_column() -> Column { Column::CreatedBy }
                fn updated_by_column() -> Column { Column::UpdatedBy }
            }
        });
    }
    if soft {
        impls.extend(quote! {
            impl ::entity::SoftDeletable for Entity { fn deleted_at_column() -> Column { Column::DeletedAt } }
        });
    }
    if scoped {
        impls.extend(quote! {
            impl ::entity::BusinessScoped for Entity {
                fn business_id_column() -> Column { Column::BusinessId }
                fn business_relation() -> ::entity::__private::RelationDef {
                    <Entity as ::entity::__private::EntityTrait>::belongs_to(::entity::businesses::Entity)
                        .from(Column::BusinessId)
                        .to(::entity::businesses::Column::Id)
                        .on_delete(::entity::__private::ForeignKeyAction::Cascade)
                        .into()
                }
            }
            impl ::entity::__private::Related<::entity::businesses::Entity> for Entity {
                fn to() -> ::entity::__private::RelationDef {
                    <Entity as ::entity::BusinessScoped>::business_relation()
                }
            }
        });
    }
    if versioned {
        impls.extend(quote! {
            impl ::entity::Versioned for Entity { fn version_column() -> Column { Column::Version } }
        });
    }

    Ok(quote! {
        #item
        #impls
    })
}
