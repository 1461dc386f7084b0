/**
 * Hand-drawn SVG charts: the loss sparkline of a job row and the line
 * charts of the job view.
 */
import * as React from 'react';

import {
  extent,
  formatTick,
  linePath,
  linearScale,
  niceDomain,
  niceTicks,
  sparklinePath
} from './format';

/** Number of distinct series colours (classes wb-series-0 .. wb-series-5). */
const PALETTE_SIZE = 6;

/** A small loss curve without axes. */
export function Sparkline(props: {
  values: (number | null)[];
  width?: number;
  height?: number;
}): JSX.Element {
  const { values, width = 96, height = 24 } = props;
  const path = sparklinePath(values, width, height - 2);
  return (
    <svg
      className="wb-sparkline"
      width={width}
      height={height}
      viewBox={`0 -1 ${width} ${height}`}
      role="img"
      aria-label="loss"
    >
      <title>loss</title>
      {path && <path d={path} />}
    </svg>
  );
}

/** One line of a chart: y against x, gaps where a value is missing. */
export interface ISeries {
  name: string;
  x: (number | null)[];
  y: (number | null)[];
}

/** A vertical dashed line at `x`, with a tooltip. */
export interface IMarker {
  x: number;
  label: string;
}

/** Props of a line chart. */
export interface ILineChartProps {
  title: string;
  xLabel: string;
  series: ISeries[];
  markers?: IMarker[];
}

/** Series with at most this many points also get a dot per point. */
const MAX_DOTS = 60;

function isFiniteNumber(v: number | null | undefined): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

const WIDTH = 480;
const HEIGHT = 200;
const MARGIN = { left: 52, right: 12, top: 10, bottom: 30 };

/**
 * A line chart with axes, grid, a legend and optional event markers,
 * in an `<svg class="wb-chart">` under a caption.
 */
export function LineChart(props: ILineChartProps): JSX.Element {
  const { title, xLabel, series, markers = [] } = props;
  const xDomain = extent(series.flatMap(s => s.x));
  const yDomain = niceDomain(series.flatMap(s => s.y));
  const left = MARGIN.left;
  const right = WIDTH - MARGIN.right;
  const top = MARGIN.top;
  const bottom = HEIGHT - MARGIN.bottom;

  let body: JSX.Element;
  if (!xDomain || !yDomain) {
    body = (
      <text className="wb-chart-empty" x={WIDTH / 2} y={HEIGHT / 2}>
        no data yet
      </text>
    );
  } else {
    const x = linearScale(xDomain, [left, right]);
    const y = linearScale(yDomain, [bottom, top]);
    const allX = series.flatMap(s => s.x).filter(isFiniteNumber);
    const xTicks = niceTicks(xDomain[0], xDomain[1], 5).filter(
      t => !allX.every(Number.isInteger) || Number.isInteger(t)
    );
    const visibleMarkers = markers.filter(
      m => m.x >= xDomain[0] && m.x <= xDomain[1]
    );
    body = (
      <>
        <g className="wb-chart-grid">
          {niceTicks(yDomain[0], yDomain[1], 4).map(t => (
            <g key={`y${t}`}>
              <line x1={left} x2={right} y1={y(t)} y2={y(t)} />
              <text className="wb-chart-ytick" x={left - 4} y={y(t)}>
                {formatTick(t)}
              </text>
            </g>
          ))}
          {xTicks.map(t => (
            <text
              key={`x${t}`}
              className="wb-chart-xtick"
              x={x(t)}
              y={bottom + 14}
            >
              {formatTick(t)}
            </text>
          ))}
        </g>
        <line
          className="wb-chart-axis"
          x1={left}
          x2={right}
          y1={bottom}
          y2={bottom}
        />
        <line
          className="wb-chart-axis"
          x1={left}
          x2={left}
          y1={top}
          y2={bottom}
        />
        {visibleMarkers.map((m, i) => (
          <line
            key={`m${i}`}
            className="wb-chart-marker"
            x1={x(m.x)}
            x2={x(m.x)}
            y1={top}
            y2={bottom}
            strokeDasharray="4 3"
          >
            <title>{m.label}</title>
          </line>
        ))}
        {series.map((s, i) => (
          <g key={s.name} className={`wb-series wb-series-${i % PALETTE_SIZE}`}>
            <path d={linePath(s.x, s.y, x, y)}>
              <title>{s.name}</title>
            </path>
            {s.x.length <= MAX_DOTS &&
              s.x.map((xv, k) => {
                const yv = s.y[k];
                return isFiniteNumber(xv) && isFiniteNumber(yv) ? (
                  <circle
                    key={k}
                    className="wb-dot"
                    cx={x(xv)}
                    cy={y(yv)}
                    r={2.5}
                  />
                ) : null;
              })}
          </g>
        ))}
        <text className="wb-chart-xlabel" x={right} y={HEIGHT - 2}>
          {xLabel}
        </text>
      </>
    );
  }

  return (
    <figure className="wb-chart-figure">
      <figcaption>{title}</figcaption>
      <svg
        className="wb-chart"
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        role="img"
        aria-label={title}
      >
        <title>{title}</title>
        {body}
      </svg>
      {series.length > 0 && (
        <ul className="wb-legend">
          {series.map((s, i) => (
            <li key={s.name}>
              <span className={`wb-swatch wb-series-${i % PALETTE_SIZE}`} />
              {s.name}
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}
