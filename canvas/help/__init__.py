"""The Canvas help endpoints: GetMetaData and Describe, generated from the registered routes and schemas."""
