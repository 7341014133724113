//! Interface language: which bundled translation to use and which way it reads.

/// Bundled languages, in the order the settings menu lists them after "System".
/// English is the source text, so it needs no catalogue.
pub const LANGUAGES: [&str; 6] = ["en", "fr", "es", "ru", "ar", "fa"];

/// The language the system asks for: the first of LANGUAGE, LC_ALL,
/// LC_MESSAGES, LANG that names a bundled language (POSIX precedence, with
/// GNU's LANGUAGE list first), else English.
pub fn system_language() -> &'static str {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(list) = var("LANGUAGE") {
        for l in list.split(':') {
            if let Some(code) = bundled(l) {
                return code;
            }
        }
    }
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|k| var(k))
        .and_then(|v| bundled(&v))
        .unwrap_or("en")
}

/// Maps a locale name ("fa_IR.UTF-8", "ar", "es-MX") to a bundled language.
pub fn bundled(locale: &str) -> Option<&'static str> {
    let lang = locale
        .split(['_', '-', '.', '@'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    LANGUAGES.iter().copied().find(|l| *l == lang)
}

/// Arabic and Persian read right to left; the window mirrors for them.
pub fn is_rtl(lang: &str) -> bool {
    matches!(lang, "ar" | "fa")
}

/// Settings-menu index (0 = follow the system) to a language code ("" = system).
pub fn code_for_index(i: i32) -> &'static str {
    usize::try_from(i)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| LANGUAGES.get(i).copied())
        .unwrap_or("")
}

pub fn index_for_code(code: &str) -> i32 {
    LANGUAGES
        .iter()
        .position(|l| *l == code)
        .map(|p| p as i32 + 1)
        .unwrap_or(0)
}

/// The effective language for a setting ("" follows the system).
pub fn effective(setting: &str) -> &'static str {
    bundled(setting).unwrap_or_else(system_language)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_names_map_to_bundled_languages() {
        assert_eq!(bundled("fa_IR.UTF-8"), Some("fa"));
        assert_eq!(bundled("ar"), Some("ar"));
        assert_eq!(bundled("es-MX"), Some("es"));
        assert_eq!(bundled("de_DE.UTF-8"), None);
        assert_eq!(bundled("C"), None);
        assert!(is_rtl("fa") && is_rtl("ar") && !is_rtl("ru"));
        assert_eq!(code_for_index(0), "");
        assert_eq!(code_for_index(5), "ar");
        assert_eq!(index_for_code("ar"), 5);
        assert_eq!(index_for_code(""), 0);
        assert_eq!(effective("ru"), "ru");
    }
}
