//! Reading the Kubernetes protobuf encoding, as far as the simulator needs
//! it. Since client-go 1.31 the typed clients (kubectl's `auth can-i`,
//! `create job`, …) send built-in objects as `k8s\0` + a runtime.Unknown
//! wrapping the object's protobuf, with no fallback to JSON. The simulator
//! keeps no protobuf schemas: it reads the envelope and an ObjectMeta, and
//! each caller the few fields it knows.

use serde_json::{json, Map, Value};

/// The content type of the protobuf encoding.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// One field's payload: a varint, or length-delimited bytes (strings,
/// messages, map entries).
#[derive(Debug, Clone, Copy)]
pub enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Every field of a message, in order: (field number, payload). Fixed-width
/// fields are skipped; None when the bytes are not a message.
pub fn fields(mut b: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let n = match key & 7 {
            0 => {
                out.push((key >> 3, Wire::Varint(varint(&mut b)?)));
                continue;
            }
            1 => 8,
            5 => 4,
            2 => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                if n > b.len() {
                    return None;
                }
                out.push((key >> 3, Wire::Bytes(&b[..n])));
                n
            }
            _ => return None,
        };
        b = b.get(n..)?;
    }
    Some(out)
}

/// The length-delimited fields of a message: (field number, bytes).
pub fn bytes_fields(b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    Some(
        fields(b)?
            .into_iter()
            .filter_map(|(f, w)| match w {
                Wire::Bytes(v) => Some((f, v)),
                Wire::Varint(_) => None,
            })
            .collect(),
    )
}

fn string(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

/// The object inside the `k8s\0` envelope: (apiVersion, kind, raw bytes).
pub fn unknown(body: &[u8]) -> Option<(String, String, &[u8])> {
    let fs = bytes_fields(body.strip_prefix(b"k8s\0")?)?;
    let type_meta = fs.iter().find(|(f, _)| *f == 1).map_or(&[][..], |x| x.1);
    let raw = fs.iter().find(|(f, _)| *f == 2)?.1;
    let tm = bytes_fields(type_meta)?;
    let get = |n: u64| {
        tm.iter()
            .find(|(f, _)| *f == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    Some((get(1), get(2), raw))
}

/// A `map<string, string>` field's entries into `m`.
fn map_entry(m: &mut Map<String, Value>, entry: &[u8]) -> Option<()> {
    let kv = bytes_fields(entry)?;
    let get = |n: u64| kv.iter().find(|(f, _)| *f == n).map_or(&[][..], |x| x.1);
    m.insert(String::from_utf8_lossy(get(1)).into_owned(), string(get(2)));
    Some(())
}

fn owner_reference(b: &[u8]) -> Option<Value> {
    let mut r = Map::new();
    for (f, w) in fields(b)? {
        let key = match f {
            1 => "kind",
            3 => "name",
            4 => "uid",
            5 => "apiVersion",
            6 => "controller",
            7 => "blockOwnerDeletion",
            _ => continue,
        };
        let v = match w {
            Wire::Bytes(v) => string(v),
            Wire::Varint(n) => json!(n != 0),
        };
        r.insert(key.into(), v);
    }
    Some(Value::Object(r))
}

/// The ObjectMeta fields a client sets on create: name, generateName,
/// namespace, labels, annotations, ownerReferences, finalizers.
pub fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    let (mut owners, mut finalizers) = (Vec::new(), Vec::new());
    for (f, v) in bytes_fields(b)? {
        match f {
            1 => {
                m.insert("name".into(), string(v));
            }
            2 => {
                m.insert("generateName".into(), string(v));
            }
            3 => {
                m.insert("namespace".into(), string(v));
            }
            11 => map_entry(&mut labels, v)?,
            12 => map_entry(&mut annotations, v)?,
            13 => owners.push(owner_reference(v)?),
            14 => finalizers.push(string(v)),
            _ => {}
        }
    }
    for (k, v) in [
        ("labels", Value::Object(labels)),
        ("annotations", Value::Object(annotations)),
        ("ownerReferences", Value::Array(owners)),
        ("finalizers", Value::Array(finalizers)),
    ] {
        if v.as_object().is_some_and(|o| !o.is_empty())
            || v.as_array().is_some_and(|a| !a.is_empty())
        {
            m.insert(k.into(), v);
        }
    }
    Some(Value::Object(m))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A length-delimited field (payloads under 128 bytes).
    pub fn ld(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((field << 3) | 2) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn reads_an_envelope_and_object_meta() {
        let owner = [
            ld(1, b"CronJob"),
            ld(3, b"nightly"),
            ld(4, b"u-1"),
            ld(5, b"batch/v1"),
            vec![6 << 3, 1],
        ]
        .concat();
        let meta = [
            ld(1, b"manual"),
            ld(11, &[ld(1, b"app"), ld(2, b"nightly")].concat()),
            ld(12, &[ld(1, b"a"), ld(2, b"b")].concat()),
            ld(13, &owner),
        ]
        .concat();
        let job = ld(1, &meta);
        let body = [
            b"k8s\0".as_slice(),
            &ld(1, &[ld(1, b"batch/v1"), ld(2, b"Job")].concat()),
            &ld(2, &job),
        ]
        .concat();
        let (api, kind, raw) = unknown(&body).unwrap();
        assert_eq!((api.as_str(), kind.as_str()), ("batch/v1", "Job"));
        let m = bytes_fields(raw).unwrap();
        let meta = object_meta(m[0].1).unwrap();
        assert_eq!(
            meta,
            json!({
                "name": "manual", "labels": {"app": "nightly"}, "annotations": {"a": "b"},
                "ownerReferences": [{"kind": "CronJob", "name": "nightly", "uid": "u-1",
                    "apiVersion": "batch/v1", "controller": true}],
            })
        );
        assert!(unknown(b"{}").is_none());
    }
}
