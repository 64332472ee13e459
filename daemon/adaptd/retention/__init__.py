"""Data lifecycle: how long rows and files are kept (retention), which adapter learned from
which rows (lineage), and deleting one person's rows from every place they live (forgetting)."""
