-- Argilla and Langfuse keep their own databases on the same PostgreSQL server as Arbiter.
CREATE DATABASE argilla;
CREATE DATABASE langfuse;
