//! Namespace restrictions: the namespace annotation (`iam.amazonaws.com/allowed-roles` by
//! default) holds a JSON array of patterns; a role is allowed when one pattern matches the
//! FULL role ARN (anchored at both ends). Patterns not starting with `arn:` are made relative
//! to the base role ARN first (kube2iam's normalisation), e.g. `app-*` with base
//! `arn:aws:iam::1:role/` becomes `arn:aws:iam::1:role/app-*`.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;

use super::config::RestrictionFormat;

/// Upper bound on distinct annotation values kept compiled.
const CACHE_MAX: usize = 1024;
/// Upper bound on patterns per annotation.
const MAX_PATTERNS: usize = 256;

enum Matcher {
    Glob(GlobMatcher),
    Regex(Regex),
}

impl Matcher {
    fn is_match(&self, arn: &str) -> bool {
        match self {
            Matcher::Glob(g) => g.is_match(arn),
            Matcher::Regex(r) => r.is_match(arn),
        }
    }
}

/// A compiled allow-list, or why the annotation is unusable.
type Compiled = Result<(Vec<(String, Matcher)>, Vec<String>), String>;

/// Checks roles against namespace allow-lists, caching compiled annotations.
pub struct Restrictions {
    key: String,
    format: RestrictionFormat,
    base: Option<String>,
    cache: Mutex<HashMap<String, Arc<Compiled>>>,
}

impl Restrictions {
    /// `key`: namespace annotation; `base`: normalised base role ARN (trailing `/`).
    pub fn new(key: &str, format: RestrictionFormat, base: Option<String>) -> Self {
        Self {
            key: key.to_string(),
            format,
            base,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn compile(&self, value: &str) -> Compiled {
        let patterns: Vec<String> = serde_json::from_str(value).map_err(|e| {
            format!(
                "annotation {} is not a JSON array of strings: {e}",
                self.key
            )
        })?;
        if patterns.len() > MAX_PATTERNS {
            return Err(format!(
                "annotation {} has more than {MAX_PATTERNS} patterns",
                self.key
            ));
        }
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for p in patterns {
            let p = p.trim();
            let full = if p.starts_with("arn:") {
                p.to_string()
            } else {
                match (&self.base, self.format) {
                    (Some(b), RestrictionFormat::Glob) => {
                        format!("{}{}", globset_escape(b), p.trim_start_matches('/'))
                    }
                    (Some(b), RestrictionFormat::Regexp) => {
                        format!("{}{}", regex::escape(b), p.trim_start_matches('/'))
                    }
                    (None, _) => {
                        problems.push(format!(
                            "pattern {p:?} is relative but no base role ARN is set"
                        ));
                        continue;
                    }
                }
            };
            let m = match self.format {
                RestrictionFormat::Glob => GlobBuilder::new(&full)
                    .literal_separator(false)
                    .backslash_escape(true)
                    .build()
                    .map(|g| Matcher::Glob(g.compile_matcher()))
                    .map_err(|e| e.to_string()),
                // Compile the pattern alone first: one like `x)|(.*` only balances inside
                // the wrapper and would escape the anchoring.
                RestrictionFormat::Regexp => Regex::new(&full)
                    .and_then(|_| Regex::new(&format!("^(?:{full})$")))
                    .map(Matcher::Regex)
                    .map_err(|e| e.to_string()),
            };
            match m {
                Ok(m) => out.push((p.to_string(), m)),
                Err(e) => problems.push(format!("pattern {p:?} is invalid: {e}")),
            }
        }
        Ok((out, problems))
    }

    fn compiled(&self, value: &str) -> Arc<Compiled> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(value) {
            return c.clone();
        }
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        let c = Arc::new(self.compile(value));
        cache.insert(value.to_string(), c.clone());
        c
    }

    /// `Ok(reason)` when `arn` is allowed in namespace `ns` (with annotations `ns_annotations`,
    /// `None` if the namespace is unknown), else `Err(reason)`.
    pub fn check(
        &self,
        ns: &str,
        ns_annotations: Option<&BTreeMap<String, String>>,
        arn: &str,
    ) -> Result<String, String> {
        let Some(ann) = ns_annotations else {
            return Err(format!("namespace {ns} is unknown, so no role is allowed"));
        };
        let Some(value) = ann.get(&self.key) else {
            return Err(format!(
                "namespace {ns} has no {} annotation, so no role is allowed",
                self.key
            ));
        };
        let compiled = self.compiled(value);
        let (matchers, problems) = match compiled.as_ref() {
            Ok(c) => c,
            Err(e) => return Err(format!("namespace {ns}: {e}")),
        };
        if let Some((p, _)) = matchers.iter().find(|(_, m)| m.is_match(arn)) {
            return Ok(format!("allowed in namespace {ns} by pattern {p:?}"));
        }
        let mut reason = format!(
            "{arn} is not allowed by namespace {ns} annotation {}",
            self.key
        );
        if !problems.is_empty() {
            reason.push_str(&format!(" ({})", problems.join("; ")));
        }
        Err(reason)
    }
}

/// Escape glob metacharacters of a literal (the base ARN) for globset.
fn globset_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if "*?[]{}\\".contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}
