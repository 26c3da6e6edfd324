# A broken candidate: the production image plus one small layer (see fault.py).
ARG BASE
FROM ${BASE}
COPY fault.py /app/candidate_fault.py
ENV CANDIDATE_FAULT=errors
CMD ["python", "-m", "candidate_fault"]
