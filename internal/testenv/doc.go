// Package testenv lets tests declare the external services and programs they
// need. A test whose dependency is missing is skipped with a one-line reason,
// or fails instead when the environment variable BK_REQUIRE_SERVICES=1 is
// set, so CI that provides the services cannot silently skip those tests.
package testenv
