//! The words on printed slips in the receipt's language: Chinese, English, or both on one
//! line, Chinese first (`金额 Amount`) (docs/devices.md §10.5).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    Zh,
    /// The default: the slips as they always were.
    #[default]
    En,
    Both,
}

impl Language {
    pub fn parse(s: &str) -> Option<Language> {
        match s {
            "zh" => Some(Language::Zh),
            "en" => Some(Language::En),
            "both" => Some(Language::Both),
            _ => None,
        }
    }

    /// The word in this language: `zh`, `en`, or `zh en`.
    pub fn pick(self, zh: &str, en: &str) -> String {
        match self {
            Language::Zh => zh.to_string(),
            Language::En => en.to_string(),
            Language::Both => format!("{zh} {en}"),
        }
    }

    /// A label from the table below.
    pub fn label(self, l: Label) -> String {
        let (zh, en) = l.words();
        self.pick(zh, en)
    }

    /// A state's name as the journal spells it (`paid`, `succeeded`, …), in this language.
    pub fn state(self, state: &str) -> String {
        let zh = match state {
            "paid" => "已支付",
            "cancelled" => "已撤销",
            "failed" => "失败",
            "expired" => "已过期",
            "processing" => "处理中",
            "awaiting_scan" => "待扫码",
            "pending" => "处理中",
            "succeeded" => "成功",
            "unknown" => "待确认",
            other => other,
        };
        self.pick(zh, state)
    }

    /// A wallet's name as the journal spells it, in this language.
    pub fn wallet(self, wallet: &str) -> String {
        let zh = match wallet {
            "alipay" => "支付宝",
            "alipay_plus" => "Alipay+",
            "wechat_pay" => "微信支付",
            "union_pay" => "云闪付",
            "alipay_face_pay" => "支付宝刷脸",
            other => other,
        };
        if zh == wallet {
            return wallet.to_string();
        }
        self.pick(zh, wallet)
    }
}

/// Every label a slip prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Receipt,
    Reversed,
    NotCompleted,
    RefundTitle,
    MerchantCopy,
    Terminal,
    Sale,
    Time,
    Reference,
    Cashier,
    State,
    Wallet,
    Code,
    TradeNo,
    ReplacedBy,
    Refund,
    Reason,
    Discount,
    ByStore,
    ByWallet,
    CustomerPaid,
    StoreReceived,
    RefundedInFull,
    Shift,
    OpenedBy,
    PaidSales,
    From,
    Until,
    Refunded,
    Gross,
    DiscountStore,
    DiscountWallet,
    Received,
    NetReceived,
    ZReport,
    XReport,
    /// A member sale's member (auto-debit, the id masked).
    Member,
    /// The reports' line of member sales (auto-debit) per bound wallet.
    MemberPay,
}

impl Label {
    fn words(self) -> (&'static str, &'static str) {
        use Label::*;
        match self {
            Receipt => ("支付凭证", "PAYMENT RECEIPT"),
            Reversed => ("支付已撤销", "PAYMENT REVERSED"),
            NotCompleted => ("支付未完成", "PAYMENT NOT COMPLETED"),
            RefundTitle => ("退款凭证", "REFUND"),
            MerchantCopy => ("商户联", "MERCHANT COPY"),
            Terminal => ("终端号", "Terminal"),
            Sale => ("订单号", "Sale"),
            Time => ("时间", "Time"),
            Reference => ("参考号", "Reference"),
            Cashier => ("收银员", "Cashier"),
            State => ("状态", "State"),
            Wallet => ("支付方式", "Wallet"),
            Code => ("付款码", "Code"),
            TradeNo => ("交易号", "Trade no"),
            ReplacedBy => ("替换为", "Replaced by"),
            Refund => ("退款", "Refund"),
            Reason => ("原因", "Reason"),
            Discount => ("优惠", "Discount"),
            ByStore => ("商户", "store"),
            ByWallet => ("平台", "wallet"),
            CustomerPaid => ("实付", "Customer paid"),
            StoreReceived => ("实收", "Store received"),
            RefundedInFull => (
                "顾客的付款已全额退回。",
                "The customer's payment was refunded in full.",
            ),
            Shift => ("班次", "shift"),
            OpenedBy => ("开班人", "opened by"),
            PaidSales => ("支付笔数", "paid sales"),
            From => ("开始", "from"),
            Until => ("结束", "until"),
            Refunded => ("退款", "refunded"),
            Gross => ("应收", "gross"),
            DiscountStore => ("商户优惠", "discount (store)"),
            DiscountWallet => ("平台优惠", "discount (wallet)"),
            Received => ("实收", "received"),
            NetReceived => ("净收", "net received"),
            ZReport => ("Z报表", "Z-REPORT"),
            XReport => ("X报表", "X-REPORT"),
            Member => ("会员", "Member"),
            MemberPay => ("会员代扣", "member pay"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_each_language() {
        assert_eq!(Language::Zh.label(Label::CustomerPaid), "实付");
        assert_eq!(Language::En.label(Label::CustomerPaid), "Customer paid");
        assert_eq!(Language::Both.label(Label::Discount), "优惠 Discount");
        assert_eq!(Language::Zh.state("paid"), "已支付");
        assert_eq!(Language::Both.wallet("alipay"), "支付宝 alipay");
        assert_eq!(Language::Zh.wallet("somepay"), "somepay");
        assert_eq!(Language::parse("both"), Some(Language::Both));
        assert_eq!(Language::parse("cn"), None);
        assert_eq!(Language::default(), Language::En);
    }
}
