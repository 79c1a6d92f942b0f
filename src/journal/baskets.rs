//! The `sale_baskets` table (migration 10): what the register said about a sale's basket for
//! the provider's campaigns, written with the sale and read with it.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::JournalError;
use super::query::{self, corrupt};
use crate::money::basket::{Basket, Goods};
use crate::money::{Amount, Currency};

#[derive(Serialize, Deserialize)]
struct Stored {
    undiscountable_minor: Option<i64>,
    discountable_minor: Option<i64>,
    goods: Vec<StoredGoods>,
    operator_id: Option<String>,
    operator_name: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredGoods {
    id: String,
    name: String,
    quantity: u32,
    price_minor: i64,
    category: Option<String>,
}

/// Keeps `basket` for sale `sale_id`; nothing when it is empty.
pub(super) fn write(conn: &Connection, sale_id: &str, basket: &Basket) -> Result<(), JournalError> {
    if basket.is_empty() {
        return Ok(());
    }
    let stored = Stored {
        undiscountable_minor: basket.undiscountable.map(|a| a.minor()),
        discountable_minor: basket.discountable.map(|a| a.minor()),
        goods: basket
            .goods
            .iter()
            .map(|g| StoredGoods {
                id: g.id.clone(),
                name: g.name.clone(),
                quantity: g.quantity,
                price_minor: g.price.minor(),
                category: g.category.clone(),
            })
            .collect(),
        operator_id: basket.operator_id.clone(),
        operator_name: basket.operator_name.clone(),
    };
    let text = serde_json::to_string(&stored)
        .map_err(|e| JournalError::Corrupt(format!("sale {sale_id} basket: {e}")))?;
    query::execute(
        conn,
        "INSERT INTO sale_baskets (sale_id, operator_id, basket) VALUES (?1, ?2, ?3)",
        params![sale_id, basket.operator_id, text],
    )?;
    Ok(())
}

/// The basket of sale `sale_id` from its stored text, in `currency`; empty without one.
pub(super) fn read(
    text: Option<String>,
    currency: Currency,
    sale_id: &str,
) -> Result<Basket, JournalError> {
    let Some(text) = text else {
        return Ok(Basket::default());
    };
    let s: Stored =
        serde_json::from_str(&text).map_err(|_| corrupt("sale", sale_id, "bad basket", &text))?;
    let at = |m: i64| Amount::from_minor(m, currency);
    Ok(Basket {
        undiscountable: s.undiscountable_minor.map(at),
        discountable: s.discountable_minor.map(at),
        goods: s
            .goods
            .into_iter()
            .map(|g| Goods {
                id: g.id,
                name: g.name,
                quantity: g.quantity,
                price: at(g.price_minor),
                category: g.category,
            })
            .collect(),
        operator_id: s.operator_id,
        operator_name: s.operator_name,
    })
}
