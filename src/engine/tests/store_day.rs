//! One store day: sale ids, receipts, the day report and the export agree on which day a
//! sale belongs to, in the store's zone, either side of its midnight.

use super::*;
use crate::clock::StoreZone;

/// Pays 10.00 at 23:58:30 and 20.00 at 00:01:30 store time (then refunds 5.00 of the
/// second), in `zone`, around the midnight that starts 2026-12-02 there.
async fn around_midnight(zone: &str) {
    let zone = StoreZone::parse(zone).unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
    let eve = day.pred_opt().unwrap();
    let mut h = harness();
    let clock = Arc::new(TokioClock::starting_at(
        zone.midnight(day) - chrono::Duration::seconds(90),
    ));
    let mut s = settings();
    s.terminal.zone = zone;
    h.engine = Engine::new(
        h.journal.clone(),
        h.gateway.clone(),
        clock.clone(),
        Arc::new(LogObserver),
        s,
    );
    let before = h.pay("10.00", "286000000000000000").await;
    tokio::time::sleep(Duration::from_secs(180)).await;
    let after = h.pay("20.00", "286000000000000100").await;
    h.engine
        .refund(&after.sale_id, cny("5.00"), None)
        .await
        .unwrap();
    h.assert_ledger_agrees();

    assert!(
        before.sale_id.starts_with("S20261201-"),
        "{}",
        before.sale_id
    );
    assert!(after.sale_id.starts_with("S20261202-"), "{}", after.sale_id);

    let ctx = crate::output::receipt::ReceiptContext {
        store_name: vec![],
        terminal_id: "DEMO01".into(),
        header: vec![],
        footer: vec![],
        width: 32,
        encoding: crate::output::escpos::Encoding::Gb18030,
        zone,
        language: Default::default(),
    };
    let slip = |sale: &SaleView| {
        let view = h.engine.view(&sale.sale_id).unwrap();
        String::from_utf8_lossy(&crate::output::receipt::escpos_sale(&view, &ctx, false))
            .into_owned()
    };
    assert!(
        slip(&before).contains("2026-12-01 23:58:"),
        "{}",
        slip(&before)
    );
    assert!(
        slip(&after).contains("2026-12-02 00:01:"),
        "{}",
        slip(&after)
    );
    let screen =
        crate::output::receipt::lines(&h.engine.view(&before.sale_id).unwrap(), "DEMO01", zone, 42);
    assert!(
        screen.iter().any(|l| l.ends_with("2026-12-01 23:58")),
        "{screen:?}"
    );

    let report = |d| crate::report::day_report(&h.journal, d, zone).unwrap();
    let (eve_report, day_report) = (report(eve), report(day));
    let paid = |r: &crate::report::DayReport| {
        r.lines
            .iter()
            .filter(|l| l.state == SaleState::Paid)
            .map(|l| (l.count, l.total.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(paid(&eve_report), vec![(1, "10.00".to_string())]);
    assert_eq!(paid(&day_report), vec![(1, "20.00".to_string())]);
    assert_eq!(day_report.net[0].total, "15.00");
    assert_eq!(eve_report.net[0].total, "10.00");

    for (d, report) in [(eve, &eve_report), (day, &day_report)] {
        let (from, to) = zone.day(d);
        let views: Vec<SaleView> = h
            .journal
            .sales(&crate::journal::SaleFilter {
                since: Some(from),
                until: Some(to),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|s| h.engine.view(&s.id).unwrap())
            .collect();
        let csv =
            crate::report::export_csv(&h.journal, &views, (Some(from), Some(to)), zone).unwrap();
        let mut rows = ::csv::Reader::from_reader(csv.as_bytes());
        let header = rows.headers().unwrap().clone();
        let col = |name| header.iter().position(|h| h == name).unwrap();
        let (booked, store_date) = (col("booked"), col("store_date"));
        let mut sum = 0;
        for row in rows.records() {
            let row = row.unwrap();
            assert_eq!(&row[store_date], d.to_string(), "{row:?}");
            sum += Amount::parse(&row[booked].replace('-', ""), cny("1").currency())
                .unwrap()
                .minor()
                * if row[booked].starts_with('-') { -1 } else { 1 };
        }
        assert_eq!(
            Amount::from_minor(sum, cny("1").currency()).to_major_string(),
            report.net[0].total,
            "{d}: the export's booked column sums to the report's net\n{csv}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_at_utc_plus_7_counts_each_sale_on_its_own_day() {
    around_midnight("+07:00").await;
}

#[tokio::test(start_paused = true)]
async fn a_store_at_utc_minus_5_counts_each_sale_on_its_own_day() {
    around_midnight("America/New_York").await;
}
