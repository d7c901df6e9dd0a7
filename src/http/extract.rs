//! Extractors whose rejections are the API's JSON errors instead of axum's plain-text
//! ones: a query that does not parse is 400 `bad_query`, a key that does not decode to
//! UTF-8 is 400 `bad_key`, and a tx or block id that does not is 400 `bad_id`.

use super::error::ApiError;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The query string parsed as `T`; 400 `bad_query` when it does not parse.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            Err(e) => Err(ApiError::bad_request("bad_query", e.body_text())),
        }
    }
}

/// The path's one parameter as text, or a 400 with `code`.
async fn segment<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    code: &'static str,
) -> Result<String, ApiError> {
    match Path::<String>::from_request_parts(parts, state).await {
        Ok(Path(s)) => Ok(s),
        Err(e) => Err(ApiError::bad_request(code, e.body_text())),
    }
}

/// The `{key}` of `/kvs/{key}`, percent-decoded; 400 `bad_key` when it is not UTF-8.
#[derive(Debug)]
pub struct KeyPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        segment(parts, state, "bad_key").await.map(KeyPath)
    }
}

/// The `{id}` of `/tx/{id}` and `/blocks/{id}`; 400 `bad_id` when it is not UTF-8.
#[derive(Debug)]
pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        segment(parts, state, "bad_id").await.map(IdPath)
    }
}
