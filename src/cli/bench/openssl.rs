//! OpenSSL's RSA-2048 speed on this machine: the signature floor the bench compares with.

/// OpenSSL's RSA-2048 figures on this machine, the baseline of our signer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct OpensslSpeed {
    pub(super) sign_ms: f64,
    pub(super) verify_ms: f64,
}

pub(super) fn openssl_speed() -> Option<OpensslSpeed> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "1", "rsa2048"])
        .output()
        .ok()?;
    parse_openssl_speed(&String::from_utf8_lossy(&out.stdout))
}

/// Reads the sign and verify times of `openssl speed rsa2048`:
///
/// ```text
///                   sign    verify    sign/s verify/s
/// rsa 2048 bits 0.000272s 0.000020s   3681.0  50899.0
/// ```
///
/// Columns are found by the header line, since OpenSSL 3.2 and later add encrypt and decrypt
/// columns (and a KEM table whose row reads `rsa2048`); without a header, the first two times
/// are sign and verify.
fn parse_openssl_speed(text: &str) -> Option<OpensslSpeed> {
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = lines
        .iter()
        .position(|t| t.first() == Some(&"rsa") && t.get(1) == Some(&"2048"))?;
    let header = lines[..row]
        .iter()
        .rev()
        .find(|t| t.contains(&"sign") && t.contains(&"verify"));
    let column = |name: &str, otherwise: usize| {
        header
            .and_then(|h| h.iter().position(|c| *c == name))
            .unwrap_or(otherwise)
    };
    // The row starts with three words of name: `rsa 2048 bits`.
    let seconds = |i: usize| -> Option<f64> {
        let cell = lines[row].get(3 + i)?.strip_suffix('s')?;
        cell.parse().ok()
    };
    Some(OpensslSpeed {
        sign_ms: seconds(column("sign", 0))? * 1000.0,
        verify_ms: seconds(column("verify", 1))? * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn openssl_speed_output_is_read_by_its_header() {
        let three_0 = "options: bn(64,64)\n\
                       \x20                 sign    verify    sign/s verify/s\n\
                       rsa 2048 bits 0.000272s 0.000020s   3681.0  50899.0\n";
        let o = parse_openssl_speed(three_0).unwrap();
        assert!(
            close(o.sign_ms, 0.272) && close(o.verify_ms, 0.020),
            "{o:?}"
        );

        // OpenSSL 3.2 and later: encrypt and decrypt columns, then a KEM table.
        let three_5 = "                   sign    verify    encrypt   decrypt   sign/s verify/s  encr./s  decr./s\n\
                       rsa  2048 bits 0.000611s 0.000018s 0.000019s 0.000600s   1636.7  55245.0  52631.6   1666.7\n\
                       \x20                              keygen    encaps    decaps keygens/s  encaps/s  decaps/s\n\
                       \x20                   rsa2048 0.040000s 0.000020s 0.000600s      25.0   50000.0   1666.7\n";
        let o = parse_openssl_speed(three_5).unwrap();
        assert!(
            close(o.sign_ms, 0.611) && close(o.verify_ms, 0.018),
            "{o:?}"
        );

        let no_header = "rsa 2048 bits 0.000611s 0.000018s 1636.7 55245.0\n";
        let o = parse_openssl_speed(no_header).unwrap();
        assert!(
            close(o.sign_ms, 0.611) && close(o.verify_ms, 0.018),
            "{o:?}"
        );

        for broken in [
            "",
            "rsa 2048 bits\n",
            "rsa 2048 bits x y\n",
            "rsa 4096 bits 1s 1s\n",
        ] {
            assert_eq!(parse_openssl_speed(broken), None, "{broken}");
        }
    }
}
