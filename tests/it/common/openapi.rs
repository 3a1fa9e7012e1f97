//! Checks real answers against `docs/openapi.yaml`: the subset of JSON Schema the spec
//! uses ($ref, allOf, type, nullable, required, properties, additionalProperties: false,
//! items, enum, minimum, maximum, minLength). Any answer the spec does not describe fails.

use serde_json::Value;

pub struct Spec {
    root: Value,
}

impl Spec {
    pub fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("docs/openapi.yaml");
        Self {
            root: serde_yaml::from_str(&text).expect("docs/openapi.yaml is YAML"),
        }
    }

    /// Panics unless `body` is what the spec documents for `status` on the operation
    /// at `template` (e.g. `/api/v1/tenant/{name}/sessions`).
    pub fn check(&self, template: &str, status: u16, body: &Value) {
        let operation = &self.root["paths"][template]["get"];
        assert!(operation.is_object(), "no GET {template} in the spec");
        let mut response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "GET {template}: status {status} is not documented"
        );
        if let Some(reference) = response["$ref"].as_str() {
            response = self.resolve(reference);
        }
        let schema = &response["content"]["application/json"]["schema"];
        let mut errors = Vec::new();
        self.validate(body, schema, "$", &mut errors);
        assert!(
            errors.is_empty(),
            "GET {template} {status} does not match docs/openapi.yaml:\n  {}\n{body}",
            errors.join("\n  ")
        );
    }

    fn resolve(&self, reference: &str) -> &Value {
        let mut node = &self.root;
        for part in reference.trim_start_matches("#/").split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "dangling $ref {reference}");
        node
    }

    fn validate(&self, value: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema["$ref"].as_str() {
            return self.validate(value, self.resolve(reference), at, errors);
        }
        if let Some(all) = schema["allOf"].as_array() {
            for part in all {
                self.validate(value, part, at, errors);
            }
        }
        if value.is_null() && schema["nullable"] == Value::Bool(true) {
            return;
        }
        if let Some(kind) = schema["type"].as_str() {
            let ok = match kind {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                other => panic!("the checker does not know type {other}"),
            };
            if !ok {
                errors.push(format!("{at}: expected {kind}, got {value}"));
                return;
            }
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                errors.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64()) {
            if n < min {
                errors.push(format!("{at}: {n} < minimum {min}"));
            }
        }
        if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64()) {
            if n > max {
                errors.push(format!("{at}: {n} > maximum {max}"));
            }
        }
        if let (Some(min), Some(s)) = (schema["minLength"].as_u64(), value.as_str()) {
            if (s.chars().count() as u64) < min {
                errors.push(format!("{at}: shorter than {min}"));
            }
        }
        if let Some(object) = value.as_object() {
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().expect("required names are strings");
                if !object.contains_key(name) {
                    errors.push(format!("{at}: missing required `{name}`"));
                }
            }
            let properties = schema["properties"].as_object();
            for (name, field) in object {
                match properties.and_then(|p| p.get(name)) {
                    Some(sub) => self.validate(field, sub, &format!("{at}.{name}"), errors),
                    None if schema["additionalProperties"] == Value::Bool(false) => {
                        errors.push(format!("{at}: `{name}` is not in the spec"))
                    }
                    None => {}
                }
            }
        }
        if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
            for (i, item) in list.iter().enumerate() {
                self.validate(item, items, &format!("{at}[{i}]"), errors);
            }
        }
    }
}
