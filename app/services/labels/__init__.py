"""The labels wing: data in (pair files, comparisons, labels from outcomes), judging, label jobs, agreement,
and moving comparisons to and from Argilla's annotators."""
