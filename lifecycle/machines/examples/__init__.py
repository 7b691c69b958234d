"""Worked examples of machine versions (docs/versions.md): not shipped as the product's rules,
loaded by name (``lifecycle --machines lifecycle.machines.examples.customs_hold``)."""
