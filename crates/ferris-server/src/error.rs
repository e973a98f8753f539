//! Errors of the HTTP API: every one is a JSON body with a message, never a panic.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ErrorBody {
    /// A stable, machine-readable code (`invalid_sql`, `not_found`, `unauthorized`, …).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault (`sql`, `name`, `settings[1]`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For SQL errors: 1-based line in the submitted SQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// For SQL errors: 1-based column in the submitted SQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// For SQL errors: the offending line with a caret under the position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered: Option<String>,
}

/// An API error: an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body (boxed: errors travel through many `Result`s).
    pub body: Box<ErrorBody>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody {
                code: code.to_string(),
                message: message.into(),
                field: None,
                line: None,
                column: None,
                rendered: None,
            }),
        }
    }

    /// 400 with the request field at fault.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        e.body.field = Some(field.to_string());
        e
    }

    /// 404 for a job that does not exist.
    pub fn no_job(name: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no job named '{name}'"),
        )
    }

    /// A SQL error at `line`:`column` of the submitted text (1-based; 0 when unknown).
    pub fn sql(
        status: StatusCode,
        code: &str,
        message: String,
        line: u64,
        column: u64,
        rendered: String,
    ) -> Self {
        let mut e = ApiError::new(status, code, message);
        e.body.field = Some("sql".to_string());
        if line > 0 {
            e.body.line = Some(line);
            e.body.column = Some(column);
        }
        e.body.rendered = Some(rendered);
        e
    }

    /// 500 for a fault of the server itself (its store), never for bad input.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(*self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A non-loopback address without a token.
    #[error(
        "refusing to listen on {addr} without a token: anyone who can reach it could deploy \
         and stop jobs; give --token-file FILE or FERRIS_TOKEN, or listen on 127.0.0.1"
    )]
    NoToken {
        /// The address.
        addr: String,
    },
    /// The data directory or its database could not be used.
    #[error("data directory {path}: {reason}")]
    Store {
        /// The directory or database file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The HTTP server failed while running.
    #[error("HTTP server: {0}")]
    Serve(#[source] std::io::Error),
    /// A query registry request that cannot be done (unknown group, a changed query that
    /// keeps its version, a rollback to a later release): the reason.
    #[error("{0}")]
    Registry(String),
}
