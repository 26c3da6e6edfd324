# A canary for the rehearsal's verdict: the production image, with a relay in front of the
# service that drops some API requests' connections without an answer (see drops.py).
ARG BASE
FROM ${BASE}
COPY drops.py /app/candidate_drops.py
CMD ["python", "-m", "candidate_drops"]
