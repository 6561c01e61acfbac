//! The OpenAI chat-completions wire format: the request body verdict sends
//! and the part of the response it reads. Everything else in a response is
//! ignored, so OpenAI, vLLM, Ollama and llama.cpp all fit.

use super::ChatRequest;
use serde::Deserialize;
use serde_json::{Value, json};

/// How the answer's shape is requested. Servers differ: OpenAI and vLLM take
/// a JSON schema, older servers only `json_object`, some nothing at all. The
/// client starts at the first and steps down when a server refuses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ResponseFormat {
    JsonSchema = 0,
    JsonObject = 1,
    Text = 2,
}

impl ResponseFormat {
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::JsonSchema,
            1 => Self::JsonObject,
            _ => Self::Text,
        }
    }

    /// The next, less demanding format (None after plain text).
    pub fn next(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::Text),
            Self::Text => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JsonSchema => "json_schema",
            Self::JsonObject => "json_object",
            Self::Text => "text",
        }
    }
}

/// The request body for `POST /chat/completions`.
pub fn request_body(
    model: &str,
    temperature: f32,
    req: &ChatRequest,
    format: ResponseFormat,
) -> Value {
    let mut body = json!({
        "model": model,
        "temperature": temperature,
        "stream": false,
        "messages": [
            {"role": "system", "content": &*req.system},
            {"role": "user", "content": &*req.user},
        ],
    });
    let response_format = match format {
        ResponseFormat::JsonSchema => Some(json!({
            "type": "json_schema",
            "json_schema": {"name": "remediation", "strict": true, "schema": &*req.schema},
        })),
        ResponseFormat::JsonObject => Some(json!({"type": "json_object"})),
        ResponseFormat::Text => None,
    };
    if let (Some(rf), Some(obj)) = (response_format, body.as_object_mut()) {
        obj.insert("response_format".into(), rf);
    }
    body
}

/// The part of a chat completion verdict reads.
#[derive(Debug, Deserialize)]
pub struct Completion {
    pub choices: Vec<Choice>,
}

#[derive(Debug, Deserialize)]
pub struct Choice {
    pub message: Message,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub content: Option<String>,
    /// OpenAI structured outputs: the model declined to answer.
    #[serde(default)]
    pub refusal: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_body_asks_for_the_current_format() {
        let req = ChatRequest {
            system: Arc::from("s"),
            user: Arc::from("u"),
            schema: Arc::new(json!({"type": "object"})),
        };
        let b = request_body("m", 0.2, &req, ResponseFormat::JsonSchema);
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(
            b["response_format"]["json_schema"]["schema"]["type"],
            "object"
        );
        assert_eq!(b["messages"][1]["content"], "u");
        let b = request_body("m", 0.2, &req, ResponseFormat::JsonObject);
        assert_eq!(b["response_format"], json!({"type": "json_object"}));
        let b = request_body("m", 0.2, &req, ResponseFormat::Text);
        assert!(b.get("response_format").is_none());
        assert_eq!(ResponseFormat::Text.next(), None);
    }
}
