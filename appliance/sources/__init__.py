"""Contact sources: files (CSV, vCard), the bundled samples and Google."""
