//! Conversions between the casings of method, variant and stream names.

/// `deposit_money` → `DepositMoney`.
pub(crate) fn upper_camel(snake: &str) -> String {
    let snake = snake.strip_prefix("r#").unwrap_or(snake);
    let mut out = String::with_capacity(snake.len());
    for word in snake.split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// `BankAccount` → `bank_account`, `HTTPServer` → `http_server`.
pub(crate) fn snake(camel: &str) -> String {
    let camel = camel.strip_prefix("r#").unwrap_or(camel);
    let chars: Vec<char> = camel.chars().collect();
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_uppercase() && next.is_some_and(char::is_lowercase),
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel() {
        assert_eq!(upper_camel("open"), "Open");
        assert_eq!(upper_camel("deposit_money"), "DepositMoney");
        assert_eq!(upper_camel("r#type"), "Type");
        assert_eq!(upper_camel("set_x2"), "SetX2");
    }

    #[test]
    fn snake_case() {
        assert_eq!(snake("BankAccount"), "bank_account");
        assert_eq!(snake("HTTPServer"), "http_server");
        assert_eq!(snake("Account2Fa"), "account2_fa");
        assert_eq!(snake("Cart"), "cart");
    }
}
