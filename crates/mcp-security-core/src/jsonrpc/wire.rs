//! How the envelope is read: serde visitors over the body that borrow its strings, skip every
//! other value with `IgnoredAny` and refuse duplicate envelope keys.

use super::*;
use serde_json::value::RawValue;
/// A message as read, its strings borrowed from the body where they had no escapes.
pub(super) struct RawMessage<'de> {
    kind: MessageKind,
    id: Option<JsonRpcId>,
    method: Option<Cow<'de, str>>,
    name: Option<Cow<'de, str>>,
    uri: Option<Cow<'de, str>>,
    task_id: Option<Cow<'de, str>>,
    arguments: Option<&'de RawValue>,
    protocol_version: Option<Cow<'static, str>>,
}

impl RawMessage<'_> {
    pub(super) fn finish(self, body: &Bytes) -> JsonRpcMessage {
        let text = |v: Option<Cow<'_, str>>, intern| v.map(|v| Text::new(body, v, intern));
        JsonRpcMessage {
            kind: self.kind,
            id: self.id,
            method: text(self.method, known_method),
            name: text(self.name, not_interned),
            uri: text(self.uri, not_interned),
            task_id: text(self.task_id, not_interned),
            // A raw value is always a slice of the body (serde_json lends it from the input).
            arguments: text(
                self.arguments.map(|raw| Cow::Borrowed(raw.get())),
                not_interned,
            ),
            protocol_version: self.protocol_version,
            body: body.clone(),
        }
    }
}

/// A structurally invalid message, found while the rest of the body is still consumed (so JSON
/// syntax errors later in the body are still reported as such).
pub(super) struct Invalid {
    pub(super) reason: &'static str,
    id: Option<JsonRpcId>,
}

impl Invalid {
    pub(super) fn into_error(self) -> EnvelopeError {
        EnvelopeError::InvalidRequest {
            reason: self.reason,
            id: self.id,
        }
    }
}

pub(super) enum Top<'de> {
    Single(Result<RawMessage<'de>, Invalid>),
    Batch(Result<Vec<RawMessage<'de>>, Invalid>),
    Other,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message or batch")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top<'de>, A::Error> {
                Ok(Top::Single(visit_message(map)?))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
                let mut messages = Vec::new();
                let mut invalid = None;
                while let Some(element) = seq.next_element::<Element<'de>>()? {
                    match (element.0, &invalid) {
                        (Ok(m), None) => messages.push(m),
                        (Err(e), None) => invalid = Some(e),
                        (_, Some(_)) => {}
                    }
                }
                Ok(Top::Batch(match invalid {
                    Some(e) => Err(e),
                    None => Ok(messages),
                }))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_unit<E>(self) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of a batch: a message, or anything else (consumed without recursion).
pub(super) struct Element<'de>(Result<RawMessage<'de>, Invalid>);

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_OBJECT: Invalid = Invalid {
            reason: "every batch element must be a JSON object",
            id: None,
        };
        impl<'de> Visitor<'de> for V {
            type Value = Element<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element<'de>, A::Error> {
                Ok(Element(visit_message(map)?))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_str<E>(self, _: &str) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_unit<E>(self) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON value of which only strings (borrowed from the body when they have no escapes),
/// numbers and null are kept.
pub(super) enum Scalar<'de> {
    Str(Cow<'de, str>),
    Num(serde_json::Number),
    Null,
    Other,
}

impl Scalar<'_> {
    /// Read a string through `keep`, or skip any other value (without recursion) as `None`.
    fn deserialize_with<'de, D, T>(d: D, keep: fn(&str) -> T) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
    {
        struct V<T>(fn(&str) -> T);
        impl<'de, T> Visitor<'de> for V<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Option<T>, E> {
                Ok(Some((self.0)(v)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        d.deserialize_any(V(keep))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Scalar::Other, Scalar::Num))
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The envelope keys we read; everything else is skipped.
pub(super) enum Key {
    JsonRpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Name,
    Uri,
    TaskId,
    Arguments,
    Meta,
    ProtocolVersion,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "jsonrpc" => Key::JsonRpc,
                    "id" => Key::Id,
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    "name" => Key::Name,
                    "uri" => Key::Uri,
                    "taskId" => Key::TaskId,
                    "arguments" => Key::Arguments,
                    "_meta" => Key::Meta,
                    crate::mcp_headers::PROTOCOL_VERSION_META_KEY => Key::ProtocolVersion,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// `params`: an object (whose `name`, `uri`, `taskId`, `_meta` protocol version and the span of
/// `arguments` we keep), an array, or something invalid.
#[derive(Default)]
pub(super) struct Params<'de> {
    name: Option<Cow<'de, str>>,
    uri: Option<Cow<'de, str>>,
    task_id: Option<Cow<'de, str>>,
    /// The raw text of `arguments`; `None` when it is absent or repeated (which one a server
    /// reads would be a guess; the message itself is not refused for it).
    arguments: Option<&'de RawValue>,
    protocol_version: Option<Cow<'static, str>>,
    invalid: Option<&'static str>,
}

/// `params._meta`: only the protocol version is kept; anything but an object is ignored.
#[derive(Default)]
pub(super) struct Meta {
    protocol_version: Option<Cow<'static, str>>,
    duplicate: bool,
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meta;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("_meta")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Meta, A::Error> {
                let mut meta = Meta::default();
                let mut seen = false;
                while let Some(key) = map.next_key::<Key>()? {
                    if !matches!(key, Key::ProtocolVersion) {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let VersionValue(value) = map.next_value()?;
                    meta.duplicate |= std::mem::replace(&mut seen, true);
                    meta.protocol_version = value;
                }
                Ok(meta)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Meta, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Meta::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_unit<E>(self) -> Result<Meta, E> {
                Ok(Meta::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A `_meta` protocol version: a string, kept as a `&'static str` when it is a known version so
/// the common case allocates nothing; any other JSON value reads as no version.
pub(super) struct VersionValue(Option<Cow<'static, str>>);

impl<'de> Deserialize<'de> for VersionValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Scalar::deserialize_with(d, |v: &str| {
            crate::mcp_headers::DEFAULT_PROTOCOL_VERSIONS
                .iter()
                .find(|known| **known == v)
                .map_or_else(|| Cow::Owned(v.to_owned()), |known| Cow::Borrowed(*known))
        })?;
        Ok(VersionValue(value))
    }
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_STRUCTURED: Params<'static> = Params {
            name: None,
            uri: None,
            task_id: None,
            arguments: None,
            protocol_version: None,
            invalid: Some("`params` must be an object or an array"),
        };
        impl<'de> Visitor<'de> for V {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'de>, A::Error> {
                let mut params = Params::default();
                let (mut seen_name, mut seen_uri, mut seen_task, mut seen_meta) =
                    (false, false, false, false);
                let mut arguments_seen = 0u8;
                while let Some(key) = map.next_key::<Key>()? {
                    let (slot, seen) = match key {
                        Key::Arguments => {
                            // Read as a raw slice: what `IgnoredAny` would skip, plus a span.
                            let raw = map.next_value::<&'de RawValue>()?;
                            arguments_seen = arguments_seen.saturating_add(1);
                            params.arguments = (arguments_seen == 1).then_some(raw);
                            continue;
                        }
                        Key::Name => (&mut params.name, &mut seen_name),
                        Key::Uri => (&mut params.uri, &mut seen_uri),
                        Key::TaskId => (&mut params.task_id, &mut seen_task),
                        Key::Meta => {
                            let meta = map.next_value::<Meta>()?;
                            if std::mem::replace(&mut seen_meta, true) {
                                params.invalid = Some("a duplicate key in `params`");
                            }
                            if meta.duplicate {
                                params.invalid = Some("a duplicate key in `params._meta`");
                            }
                            params.protocol_version = meta.protocol_version;
                            continue;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    let value = map.next_value::<Scalar>()?;
                    if std::mem::replace(seen, true) {
                        params.invalid = Some("a duplicate key in `params`");
                    }
                    *slot = match value {
                        Scalar::Str(s) => Some(s),
                        _ => None,
                    };
                }
                Ok(params)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_str<E>(self, _: &str) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_unit<E>(self) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) fn visit_message<'de, A: MapAccess<'de>>(
    mut map: A,
) -> Result<Result<RawMessage<'de>, Invalid>, A::Error> {
    let mut jsonrpc = None;
    let mut id = None;
    let mut method = None;
    let mut params: Option<Params<'de>> = None;
    let mut has_result = false;
    let mut has_error = false;
    let mut duplicate = false;
    while let Some(key) = map.next_key::<Key>()? {
        let repeated = match key {
            Key::JsonRpc => jsonrpc.replace(map.next_value::<Scalar>()?).is_some(),
            Key::Id => id.replace(map.next_value::<Scalar>()?).is_some(),
            Key::Method => method.replace(map.next_value::<Scalar>()?).is_some(),
            Key::Params => params.replace(map.next_value::<Params>()?).is_some(),
            Key::Result => {
                map.next_value::<IgnoredAny>()?;
                std::mem::replace(&mut has_result, true)
            }
            Key::Error => {
                map.next_value::<IgnoredAny>()?;
                std::mem::replace(&mut has_error, true)
            }
            Key::Name
            | Key::Uri
            | Key::TaskId
            | Key::Arguments
            | Key::Meta
            | Key::ProtocolVersion
            | Key::Other => {
                map.next_value::<IgnoredAny>()?;
                false
            }
        };
        duplicate |= repeated;
    }

    let id = match id {
        None => None,
        Some(Scalar::Str(s)) => Some(JsonRpcId::String(s.into())),
        Some(Scalar::Num(n)) => Some(JsonRpcId::Number(n)),
        Some(Scalar::Null) => Some(JsonRpcId::Null),
        Some(Scalar::Other) => {
            return Ok(Err(Invalid {
                reason: "`id` must be a string, a number or null",
                id: None,
            }));
        }
    };
    let invalid = |reason| {
        Ok(Err(Invalid {
            reason,
            id: id.clone(),
        }))
    };
    if duplicate {
        return invalid("a duplicate key in the message");
    }
    if !matches!(&jsonrpc, Some(Scalar::Str(v)) if v == "2.0") {
        return invalid("`jsonrpc` must be \"2.0\"");
    }
    let params = params.unwrap_or_default();
    if let Some(reason) = params.invalid {
        return invalid(reason);
    }
    let (kind, method) = match method {
        Some(Scalar::Str(m)) if has_result || has_error => {
            let _ = m;
            return invalid("a message cannot have both `method` and `result`/`error`");
        }
        Some(Scalar::Str(m)) if id.is_some() => (MessageKind::Request, Some(m)),
        Some(Scalar::Str(m)) => (MessageKind::Notification, Some(m)),
        Some(_) => return invalid("`method` must be a string"),
        None if has_result == has_error => {
            return invalid(
                "a message needs `method`, or `id` with exactly one of `result`/`error`",
            );
        }
        None if id.is_none() => return invalid("a response needs an `id`"),
        None => (MessageKind::Response, None),
    };
    Ok(Ok(RawMessage {
        kind,
        id,
        method,
        name: params.name,
        uri: params.uri,
        task_id: params.task_id,
        arguments: params.arguments,
        protocol_version: params.protocol_version,
    }))
}
