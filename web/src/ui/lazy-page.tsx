// A page whose code is fetched when it is first opened (its own chunk), e.g. the playground, whose
// onnxruntime-web must never weigh on the first load.
import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { readable } from '../api.ts';
import { ErrorBox, Loading } from './notice.tsx';

type PageComponent = ComponentType<{ params: Record<string, string> }>;

export function lazyPage(load: () => Promise<PageComponent>, what: string): PageComponent {
  let loaded: PageComponent | undefined;
  return function LazyPage(props) {
    const [Page, setPage] = useState<PageComponent | undefined>(() => loaded);
    const [error, setError] = useState<string | null>(null);
    useEffect(() => {
      if (!Page) load().then((p) => ((loaded = p), setPage(() => p)), (err) => setError(readable(err)));
    }, []);
    if (error) return <ErrorBox error={`${error}. Reload the page to try again.`} title={`Could not load the ${what}`} />;
    return Page ? <Page {...props} /> : <Loading what={what} />;
  };
}
