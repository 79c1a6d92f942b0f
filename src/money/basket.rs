//! What the register says about a sale's basket for the provider's campaigns: the parts of
//! the amount a discount may and may not apply to, the goods (id, name, quantity, unit
//! price, category) and the cashier. All optional; when given, checked against the amount
//! as strictly as the amount itself (docs/api.md, "Campaign fields").

use super::Amount;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Basket {
    /// The part of the amount no discount may apply to (`undiscountable_amount`).
    pub undiscountable: Option<Amount>,
    /// The part a discount may apply to (`discountable_amount`).
    pub discountable: Option<Amount>,
    pub goods: Vec<Goods>,
    /// The cashier (`operator_id`), and the name printed for them.
    pub operator_id: Option<String>,
    pub operator_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goods {
    pub id: String,
    pub name: String,
    pub quantity: u32,
    /// The unit price.
    pub price: Amount,
    pub category: Option<String>,
}

/// Why a basket does not fit its sale: the request's field (`goods_detail[1].price`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketError {
    pub field: String,
    pub why: String,
}

/// Longest texts, as the Open Platform takes them.
const ID_MAX: usize = 64;
const NAME_MAX: usize = 256;
const CATEGORY_MAX: usize = 24;
const OPERATOR_ID_MAX: usize = 28;
const OPERATOR_NAME_MAX: usize = 64;
/// Most goods lines and units per line a sale may name.
pub const GOODS_MAX: usize = 100;
pub const QUANTITY_MAX: u32 = 10_000;

impl Basket {
    pub fn is_empty(&self) -> bool {
        self == &Basket::default()
    }

    /// Every text of the basket with the request field it came from.
    pub fn texts(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for (i, g) in self.goods.iter().enumerate() {
            out.push((format!("goods_detail[{i}].goods_id"), g.id.as_str()));
            out.push((format!("goods_detail[{i}].goods_name"), g.name.as_str()));
            if let Some(c) = &g.category {
                out.push((format!("goods_detail[{i}].goods_category"), c.as_str()));
            }
        }
        for (field, v) in [
            ("operator_id", &self.operator_id),
            ("operator_name", &self.operator_name),
        ] {
            if let Some(v) = v {
                out.push((field.to_string(), v.as_str()));
            }
        }
        out
    }

    /// Checks the basket against the sale's `amount`: amounts in its currency; both parts,
    /// when given, add up to it (one alone is at most it); the goods' price × quantity add
    /// up to it; every text present, printable and within its length.
    pub fn check(&self, amount: Amount) -> Result<(), BasketError> {
        let err = |field: &str, why: String| BasketError {
            field: field.to_string(),
            why,
        };
        for (field, part) in [
            ("undiscountable_amount", self.undiscountable),
            ("discountable_amount", self.discountable),
        ] {
            if let Some(p) = part {
                if p.currency() != amount.currency() {
                    return Err(err(field, format!("must be in {}", amount.currency())));
                }
                if p.minor() > amount.minor() {
                    return Err(err(field, format!("{p} is more than the amount {amount}")));
                }
            }
        }
        if let (Some(u), Some(d)) = (self.undiscountable, self.discountable)
            && u.minor().checked_add(d.minor()) != Some(amount.minor())
        {
            return Err(err(
                "discountable_amount",
                format!("{d} and the undiscountable {u} must add up to the amount {amount}"),
            ));
        }
        if self.goods.len() > GOODS_MAX {
            return Err(err("goods_detail", format!("at most {GOODS_MAX} lines")));
        }
        let mut total: i64 = 0;
        for (i, g) in self.goods.iter().enumerate() {
            let at = |f: &str| format!("goods_detail[{i}].{f}");
            text(&at("goods_id"), &g.id, ID_MAX)?;
            text(&at("goods_name"), &g.name, NAME_MAX)?;
            if let Some(c) = &g.category {
                text(&at("goods_category"), c, CATEGORY_MAX)?;
            }
            if g.quantity == 0 || g.quantity > QUANTITY_MAX {
                return Err(err(&at("quantity"), format!("1 to {QUANTITY_MAX}")));
            }
            if g.price.currency() != amount.currency() {
                return Err(err(
                    &at("price"),
                    format!("must be in {}", amount.currency()),
                ));
            }
            if !g.price.is_positive() {
                return Err(err(&at("price"), "must be above zero".to_string()));
            }
            total = g
                .price
                .minor()
                .checked_mul(i64::from(g.quantity))
                .and_then(|line| total.checked_add(line))
                .filter(|t| *t <= amount.minor())
                .ok_or_else(|| {
                    err(
                        &at("price"),
                        format!("the goods up to this line come to more than the amount {amount}"),
                    )
                })?;
        }
        if !self.goods.is_empty() && total != amount.minor() {
            let last = self.goods.len() - 1;
            return Err(err(
                &format!("goods_detail[{last}].price"),
                format!(
                    "the goods come to {} (price × quantity), not the amount {amount}",
                    Amount::from_minor(total, amount.currency())
                ),
            ));
        }
        if let Some(id) = &self.operator_id {
            text("operator_id", id, OPERATOR_ID_MAX)?;
        }
        if let Some(name) = &self.operator_name {
            text("operator_name", name, OPERATOR_NAME_MAX)?;
        }
        Ok(())
    }
}

/// A text field: 1 to `max` characters, none of them a control character.
fn text(field: &str, value: &str, max: usize) -> Result<(), BasketError> {
    let n = value.chars().count();
    if n == 0 || n > max || value.chars().any(char::is_control) {
        return Err(BasketError {
            field: field.to_string(),
            why: format!("1 to {max} printable characters"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn cny(minor: i64) -> Amount {
        Amount::from_minor(minor, Currency::from_code("CNY").unwrap())
    }

    fn goods(id: &str, quantity: u32, price: i64) -> Goods {
        Goods {
            id: id.into(),
            name: format!("goods {id}"),
            quantity,
            price: cny(price),
            category: None,
        }
    }

    fn field(b: &Basket, amount: i64) -> Option<String> {
        b.check(cny(amount)).err().map(|e| e.field)
    }

    #[test]
    fn a_basket_must_fit_its_amount_and_names_the_field_that_does_not() {
        let ok = Basket {
            undiscountable: Some(cny(200)),
            discountable: Some(cny(800)),
            goods: vec![goods("A", 2, 300), goods("B", 1, 400)],
            operator_id: Some("C01".into()),
            operator_name: Some("李雷".into()),
        };
        assert_eq!(ok.check(cny(1000)), Ok(()));
        assert_eq!(Basket::default().check(cny(1)), Ok(()));

        let short = Basket {
            goods: vec![goods("A", 2, 300), goods("B", 1, 300)],
            ..Basket::default()
        };
        assert_eq!(
            field(&short, 1000).as_deref(),
            Some("goods_detail[1].price")
        );
        let over = Basket {
            goods: vec![goods("A", 4, 300), goods("B", 1, 300)],
            ..Basket::default()
        };
        assert_eq!(field(&over, 1000).as_deref(), Some("goods_detail[0].price"));
        let none = Basket {
            goods: vec![goods("A", 0, 1000)],
            ..Basket::default()
        };
        assert_eq!(
            field(&none, 1000).as_deref(),
            Some("goods_detail[0].quantity")
        );
        let huge = Basket {
            goods: vec![goods("A", QUANTITY_MAX, i64::MAX / 2)],
            ..Basket::default()
        };
        assert_eq!(field(&huge, 1000).as_deref(), Some("goods_detail[0].price"));
        let unnamed = Basket {
            goods: vec![Goods {
                name: "a\nb".into(),
                ..goods("A", 1, 1000)
            }],
            ..Basket::default()
        };
        assert_eq!(
            field(&unnamed, 1000).as_deref(),
            Some("goods_detail[0].goods_name")
        );
        let parts = Basket {
            undiscountable: Some(cny(300)),
            discountable: Some(cny(800)),
            ..Basket::default()
        };
        assert_eq!(field(&parts, 1000).as_deref(), Some("discountable_amount"));
        let above = Basket {
            undiscountable: Some(cny(1001)),
            ..Basket::default()
        };
        assert_eq!(
            field(&above, 1000).as_deref(),
            Some("undiscountable_amount")
        );
        let operator = Basket {
            operator_id: Some("C\u{7}1".into()),
            ..Basket::default()
        };
        assert_eq!(field(&operator, 1000).as_deref(), Some("operator_id"));
    }
}
