//! Store errors in words a user acts on.

/// An object_store error in words a user acts on, with its causes (a refused
/// connection, a timeout) and without credentials (object_store never puts them in
/// its errors; requests are signed in headers, not URLs).
pub fn describe(e: &object_store::Error) -> String {
    use std::error::Error as _;
    let head = match e {
        object_store::Error::NotFound { .. } => "no such object".to_string(),
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            "access denied: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
                .to_string()
        }
        other => other.to_string(),
    };
    // S3 servers answer a bad key or signature with a 403 that object_store reports
    // as a generic error: say what to check.
    let text = e.to_string();
    let denied = [
        "403 Forbidden",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    ];
    let head = if !head.starts_with("access denied") && denied.iter().any(|d| text.contains(d)) {
        format!(
            "access denied: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): {head}"
        )
    } else {
        head
    };
    let mut words = vec![head];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !words.iter().any(|w| w.contains(&text)) {
            words.push(text);
        }
        source = s.source();
    }
    words.join(": ")
}
