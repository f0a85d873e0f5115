// Types of the vendored openapi-fetch: the package's own, same version.
export * from "openapi-fetch";
export { default } from "openapi-fetch";
