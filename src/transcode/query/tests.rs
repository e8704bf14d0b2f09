//! Query keys and form decoding.

use super::*;

#[test]
fn keys() {
    let seg = |name, sub| Segment { name, sub };
    assert_eq!(parse_key("a", 64).unwrap(), [seg("a", None)]);
    assert_eq!(
        parse_key("a.b", 64).unwrap(),
        [seg("a", None), seg("b", None)]
    );
    assert_eq!(parse_key("m[k.x]", 64).unwrap(), [seg("m", Some("k.x"))]);
    assert_eq!(parse_key("m[]", 64).unwrap(), [seg("m", Some(""))]);
    assert_eq!(
        parse_key("items[0].id", 64).unwrap(),
        [seg("items", Some("0")), seg("id", None)]
    );
    for bad in [
        "", ".", "a.", ".a", "a..b", "[0]", "a[0", "a[0]b", "a]", "a[0][1]",
    ] {
        assert_eq!(parse_key(bad, 64), None, "{bad}");
    }
}

#[test]
fn plus_is_space_and_escaped_plus_is_plus() {
    assert_eq!(form_decode("red+apple").unwrap(), "red apple");
    assert_eq!(form_decode("%2B44").unwrap(), "+44");
    assert_eq!(form_decode("big%20green+box").unwrap(), "big green box");
    assert_eq!(form_decode("caf%C3%A9").unwrap(), "café");
}

#[test]
fn bad_escapes_are_errors() {
    assert_eq!(form_decode("%zz"), Err(RequestError::QueryEncoding));
    assert_eq!(form_decode("%4"), Err(RequestError::QueryEncoding));
    assert_eq!(form_decode("%FF"), Err(RequestError::QueryEncoding));
    assert_eq!(form_decode("%+1"), Err(RequestError::QueryEncoding));
}
